"""An independent AT client against the modem simulator: python-gsmmodem-new (PyPI). It runs
the library's own init, then each step below, and prints one JSON line per step with whether it
worked, so the Rust test (tests/modem_interop.rs) can say which step broke.
Usage: modem_gsmmodem.py PORT PERSON."""

import json
import sys
import time

from gsmmodem.modem import GsmModem

port, person = sys.argv[1], sys.argv[2]
long_text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 6


def step(name, action):
    try:
        detail = action()
        print(json.dumps({"step": name, "ok": True, "detail": str(detail)}), flush=True)
    except Exception as e:  # the step's failure is the test's finding
        print(json.dumps({"step": name, "ok": False, "detail": repr(e)}), flush=True)


modem = GsmModem(port, 115200)
step("connect", lambda: modem.connect())
step("manufacturer", lambda: modem.manufacturer)
step("model", lambda: modem.model)
step("revision", lambda: modem.revision)
step("imei", lambda: modem.imei)
step("imsi", lambda: modem.imsi)
step("network", lambda: modem.networkName)
step("signal", lambda: modem.signalStrength)
step("sms gsm7", lambda: modem.sendSms(person, "Help is on the way").reference)
step("sms ucs2", lambda: modem.sendSms(person, "Hälsning ✓ € från Anna").reference)
step("sms long", lambda: modem.sendSms(person, long_text).reference)


def dial_and_hang_up():
    call = modem.dial(person)
    deadline = time.time() + 10
    while not call.answered and time.time() < deadline:
        time.sleep(0.1)
    answered = call.answered
    call.hangup()
    if not answered:
        raise RuntimeError("the call was not answered")
    return "answered"


step("dial", dial_and_hang_up)
step("stored sms", lambda: [s.text for s in modem.listStoredSms(delete=False)])
modem.close()

"""An independent SIA DC-09 receiver for the interoperability test: pysiaalarm (the library
Home Assistant's SIA integration uses) on loopback. It prints one JSON line when it listens and
one per event it accepted, with what it decoded, so the Rust test can count copies and check
the content. Usage: dc09_receiver.py PORT ACCOUNT [KEY] [tcp|udp]."""

import asyncio
import json
import sys
import threading

from pysiaalarm import SIAAccount
from pysiaalarm import SIAClient as SyncClient
from pysiaalarm.aio import CommunicationsProtocol, SIAClient


async def main() -> None:
    port = int(sys.argv[1])
    account = sys.argv[2]
    key = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "-" else None
    protocol = sys.argv[4].upper() if len(sys.argv) > 4 else "TCP"

    def show(event) -> None:
        print(
            json.dumps(
                {
                    "account": event.account,
                    "sequence": event.sequence,
                    "message_type": str(event.message_type.value)
                    if event.message_type
                    else None,
                    "encrypted": bool(event.encrypted),
                    "code": event.code,
                    "ri": event.ri,
                    "event_qualifier": event.event_qualifier,
                    "event_type": event.event_type,
                    "x_data": event.x_data,
                    "response": str(event.response.value) if event.response else None,
                }
            ),
            flush=True,
        )

    async def on_event(event) -> None:
        show(event)

    accounts = [SIAAccount(account, key, allowed_timeband=(40, 20))]
    if protocol == "UDP":
        # pysiaalarm's asyncio UDP server never answers on Python 3.11 (its transport type
        # check fails), so UDP uses the library's threaded server, as its sync API does.
        with SyncClient("127.0.0.1", port, accounts, function=show, protocol=CommunicationsProtocol.UDP):
            print(json.dumps({"listening": port}), flush=True)
            threading.Event().wait()
        return
    client = SIAClient(
        "127.0.0.1",
        port,
        accounts,
        function=on_event,
        protocol=CommunicationsProtocol[protocol],
    )
    async with client:
        print(json.dumps({"listening": port}), flush=True)
        await asyncio.Event().wait()


asyncio.run(main())

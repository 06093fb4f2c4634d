// A second independent SIA DC-09 receiver for the interoperability test: the receiver of
// ioBroker's SIA adapter (npm package iobroker.sia), which takes the AES key either as its
// characters or as hex digits. It prints one JSON line when it listens and one per message it
// accepted or refused, so the Rust test can count copies and check the content.
// Usage: node dc09_iobroker.js PORT ACCOUNT KEY|- ascii|hex tcp|udp
// NODE_PATH must reach the installed package (`npm root -g` after `npm install -g`).
"use strict";
const { sia } = require("iobroker.sia/build/lib/sia.js");

const [port, account, key, keyFormat, protocol] = process.argv.slice(2);
const withKey = key !== undefined && key !== "-";
const server = new sia({ host: "127.0.0.1", port: Number(port), timeout: 30 });
server.setAccounts([
  {
    accountnumber: account,
    aes: withKey,
    hex: keyFormat === "hex",
    password: withKey ? key : "",
  },
]);
server.on("sia", (message, error) => {
  if (error) {
    console.log(JSON.stringify({ refused: String(error) }));
    return;
  }
  console.log(
    JSON.stringify({
      account: message.act,
      sequence: message.seq,
      id: message.id,
      line: message.lpref,
      receiver: message.rpref,
      data: message.data_message,
      extended: message.data_extended,
      timestamp: message.ts,
    }),
  );
});
server.on("error", (error) => console.error(`receiver error: ${error}`));
if (protocol === "udp") {
  server.serverStartUDP();
} else {
  server.serverStartTCP();
}
// The library logs when it listens only through a logger; announce it here once bound.
const socket = protocol === "udp" ? server.serverudp : server.servertcp;
socket.on("listening", () => console.log(JSON.stringify({ listening: Number(port) })));

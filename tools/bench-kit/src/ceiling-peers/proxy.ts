// Ceiling peer: a ROUTER <-> DEALER proxy written in JavaScript, one receive/forward loop each
// way, as any JavaScript broker has. Usage: proxy.ts <backend endpoint>. Binds its frontend
// ROUTER to tcp://127.0.0.1:* and prints `ready <frontend endpoint>`; its backend DEALER
// connects to the given endpoint.
import { Dealer, Router } from "zeromq";
import { announceReady } from "../announce.js";
import { CEILING_HWM } from "./shared.js";

const backendEndpoint = process.argv[2];
if (backendEndpoint === undefined) {
  console.error("usage: proxy.ts <backend endpoint>");
  process.exit(2);
}

const options = { linger: 0, sendHighWaterMark: CEILING_HWM, receiveHighWaterMark: CEILING_HWM };
const frontend = new Router(options);
const backend = new Dealer(options);
backend.connect(backendEndpoint);
await frontend.bind("tcp://127.0.0.1:*");

let closing = false;
announceReady(frontend.lastEndpoint ?? "", () => {
  closing = true;
  frontend.close();
  backend.close();
});

// [client identity, payload] from the frontend goes to the backend as is; the echo server's
// reply comes back with the identity in front, which routes it back to the client.
async function requests(): Promise<void> {
  for await (const message of frontend) await backend.send(message);
}
async function replies(): Promise<void> {
  for await (const message of backend) await frontend.send(message);
}

await Promise.all([requests(), replies()]).catch((error: unknown) => {
  if (closing) return;
  console.error(error);
  process.exit(1);
});

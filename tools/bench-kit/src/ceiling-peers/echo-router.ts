// Ceiling peer: a ROUTER echo server. Binds tcp://127.0.0.1:* and prints `ready <endpoint>`;
// echoes every message, envelope included, back to its sender.
import { Router } from "zeromq";
import { announceReady } from "../announce.js";
import { CEILING_HWM } from "./shared.js";

const router = new Router({
  linger: 0,
  // A ROUTER drops what it cannot queue; room for far more than the benchmark's window.
  sendHighWaterMark: CEILING_HWM,
  receiveHighWaterMark: CEILING_HWM,
});
await router.bind("tcp://127.0.0.1:*");
announceReady(router.lastEndpoint ?? "", () => router.close());

for await (const message of router) await router.send(message);

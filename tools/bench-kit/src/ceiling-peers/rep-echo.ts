// Ceiling peer: a REP echo server. Binds tcp://127.0.0.1:* and prints `ready <endpoint>`;
// replies to every request with the request itself.
import { Reply } from "zeromq";
import { announceReady } from "../announce.js";

const reply = new Reply({ linger: 0 });
await reply.bind("tcp://127.0.0.1:*");
announceReady(reply.lastEndpoint ?? "", () => reply.close());

for await (const request of reply) await reply.send(request);

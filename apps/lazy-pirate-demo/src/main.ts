// Lazy Pirate, narrated: a client keeps its requests answered while the server is killed with
// SIGKILL and started again, then gives up cleanly when the server stays away.
import { RequestAbandonedError } from "@zmq-patterns/core";
import { allocateAddress } from "@zmq-patterns/core/testing";
import { binCommand, Demo } from "@zmq-patterns/demo-kit";
import { LazyPirateClient } from "@zmq-patterns/lazy-pirate";

const demo = new Demo("Lazy Pirate: reliable request-reply from the client side");

await demo.run(async () => {
  demo.intro(
    "A client sends numbered requests to an echo server (a separate process).",
    "It waits 800 ms for each reply; on silence it closes its socket, opens a new one and resends.",
  );
  const endpoint = await allocateAddress("tcp");
  const serverCommand = binCommand("@zmq-patterns/lazy-pirate", "lazy-pirate", [
    "server",
    "--bind",
    endpoint,
    "--work-ms",
    "100",
  ]);

  demo.step(`Start the server on ${endpoint}.`);
  const server = await demo.start("server", serverCommand);

  await using client = new LazyPirateClient({ endpoint, timeoutMs: 800, retries: 4 });
  client.on("retry", ({ attempt }) =>
    demo.say(`no reply to attempt ${attempt} within 800 ms: new socket, resending`),
  );

  demo.step("Send three requests.");
  for (let n = 1; n <= 3; n++) {
    const reply = await client.request(String(n));
    demo.ok(`request ${n} answered: "${reply[0]}"`);
  }

  demo.step("Kill the server with SIGKILL, then send request 4.");
  await server.kill("SIGKILL");
  demo.say("server killed; request 4 goes out to nobody");
  const pending = client.request("4");
  await new Promise((resolve) => client.once("retry", resolve));
  demo.step("Restart the server while the client is retrying.");
  await server.restart();
  const reply = await pending;
  demo.ok(`request 4 answered after the restart: "${reply[0]}"`);

  demo.step("Stop the server for good and send request 5.");
  await server.stop();
  const started = performance.now();
  try {
    await client.request("5");
    throw new Error("request 5 should have been abandoned");
  } catch (error) {
    if (!(error instanceof RequestAbandonedError)) throw error;
    demo.ok(
      `abandoned after ${error.attempts} attempts in ${((performance.now() - started) / 1000).toFixed(1)} s with ${error.name} (code ${error.code})`,
    );
  }
});

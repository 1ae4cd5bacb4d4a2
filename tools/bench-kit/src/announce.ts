/**
 * The peer side of the kit's process conventions: the ready line and the stop signals. Kept free
 * of imports so peer scripts start fast.
 * @module
 */

/** Matches the line printed by {@link announceReady}: `ready` and an optional endpoint. */
export const READY_PATTERN = /^ready(?:[ \t]+(\S+))?[ \t]*$/m;

/**
 * Called by a peer script once it is ready: prints `ready <endpoint>` (or just `ready`) on stdout
 * (see {@link READY_PATTERN}), then runs `shutdown` and exits when asked to stop (SIGTERM,
 * SIGINT). A peer whose benchmark dies without stopping it is stopped by the orphan guard that
 * {@link peerCommand} preloads.
 */
export function announceReady(endpoint = "", shutdown: () => unknown = () => {}): void {
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    Promise.resolve()
      .then(shutdown)
      .then(
        () => process.exit(0),
        (error: unknown) => {
          console.error(error);
          process.exit(1);
        },
      );
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  process.stdout.write(endpoint === "" ? "ready\n" : `ready ${endpoint}\n`);
}

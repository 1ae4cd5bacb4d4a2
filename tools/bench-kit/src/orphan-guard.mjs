// Preloaded (`node --import`) into every peer the bench kit starts (see `peerCommand`), whatever
// the peer is: a kit script or a package's bin. When the benchmark process that started the peer
// dies, even by SIGKILL, the peer is re-parented; this notices within half a second and sends the
// peer SIGTERM, its usual clean shutdown, then exits outright 3 s later if it still runs. So no
// peer outlives its benchmark. Plain JavaScript, so it loads before (and without) tsx.
const parent = process.ppid;
const poll = setInterval(() => {
  if (process.ppid === parent) return;
  clearInterval(poll);
  setTimeout(() => process.exit(1), 3000).unref();
  process.kill(process.pid, "SIGTERM");
}, 500);
// Never what keeps a peer alive.
poll.unref();

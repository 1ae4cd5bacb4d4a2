/** Send and receive high-water marks of the peers: far above the benchmark's window, so no drop. */
export const PEER_HWM = 100_000;

/** Requests in flight in the pipelined measurements. */
export const WINDOW = 1000;

/** Size of every request and reply. */
export const PAYLOAD_BYTES = 10;

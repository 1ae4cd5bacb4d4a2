import { createRequire } from "node:module";
import * as os from "node:os";
import { version as libzmqVersion } from "zeromq";

/** The machine and software a benchmark ran on, stored with every result file. */
export interface MachineInfo {
  /** CPU model as reported by the OS, e.g. `"AMD EPYC 7B13"`. */
  cpuModel: string;
  /** Logical CPUs available to this process (`os.availableParallelism()`). */
  cpuCount: number;
  /** OS type, kernel release and architecture, e.g. `"Linux 6.8.0 x64"`. */
  os: string;
  /** Node.js version, e.g. `"v20.20.2"`. */
  node: string;
  /** Version of the npm `zeromq` package. */
  zeromq: string;
  /** Version of the libzmq bundled in the `zeromq` package. */
  libzmq: string;
}

/** Describes the current machine: CPU model and count, OS, Node.js, zeromq and libzmq versions. */
export function machineInfo(): MachineInfo {
  const require = createRequire(import.meta.url);
  const zeromqPackage = require("zeromq/package.json") as { version: string };
  return {
    cpuModel: os.cpus()[0]?.model.trim() ?? "unknown",
    cpuCount: os.availableParallelism(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    zeromq: zeromqPackage.version,
    libzmq: libzmqVersion,
  };
}

/** One line describing a machine, for the header of a benchmark report. */
export function formatMachine(info: MachineInfo): string {
  return (
    `${info.cpuModel} x${info.cpuCount}, ${info.os}, Node ${info.node}, ` +
    `zeromq ${info.zeromq} (libzmq ${info.libzmq})`
  );
}

/**
 * The 1, 5 and 15 minute load averages, e.g. `"0.52, 0.61, 0.40"`: printed with a report, because
 * a benchmark's figures mean little on a machine busy with other work.
 */
export function loadAverage(): string {
  return os
    .loadavg()
    .map((value) => value.toFixed(2))
    .join(", ");
}

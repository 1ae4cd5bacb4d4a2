/** A table cell: numbers are formatted with thousands separators and right-aligned. */
export type Cell = string | number;

/**
 * Prints `rows` as an aligned table under `title`. Columns are the keys of the rows in first-seen
 * order; a row lacking a key shows an empty cell. The first column is left-aligned, the others
 * right-aligned. `notes` are printed under the table, one per line.
 */
export function printTable(
  title: string,
  rows: readonly Readonly<Record<string, Cell>>[],
  notes: readonly string[] = [],
): void {
  console.log(formatTable(title, rows, notes));
}

/** The text {@link printTable} prints. */
export function formatTable(
  title: string,
  rows: readonly Readonly<Record<string, Cell>>[],
  notes: readonly string[] = [],
): string {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  const cells = rows.map((row) => columns.map((column) => formatCell(row[column])));
  const widths = columns.map((column, i) =>
    Math.max(column.length, ...cells.map((row) => row[i]!.length)),
  );
  const line = (values: readonly string[]): string =>
    values
      .map((value, i) => (i === 0 ? value.padEnd(widths[i]!) : value.padStart(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [
    "",
    title,
    line(columns),
    widths.map((width) => "-".repeat(width)).join("  "),
    ...cells.map(line),
    ...notes,
    "",
  ].join("\n");
}

/**
 * `value / baseline` as a short string, e.g. `"1.00x"`, `"0.42x"`, `"0.071x"`; `"n/a"` when the
 * baseline is missing, zero or not a number.
 */
export function ratio(value: number, baseline: number | undefined): string {
  if (baseline === undefined || !(baseline > 0) || !Number.isFinite(value)) return "n/a";
  const r = value / baseline;
  return (r >= 0.1 ? r.toFixed(2) : r.toPrecision(2)) + "x";
}

/** A number with thousands separators and at most `digits` decimals (default 0). */
export function formatNumber(value: number, digits = 0): string {
  return value.toLocaleString("en-US", { maximumFractionDigits: digits });
}

function formatCell(cell: Cell | undefined): string {
  if (cell === undefined) return "";
  if (typeof cell === "number") return formatNumber(cell, Number.isInteger(cell) ? 0 : 2);
  return cell;
}

// Numbers written as C's printf writes them ("%.4f", "%+.2f", "%.9g"): from the exact binary
// value, ties to even. (Number.prototype.toFixed rounds ties up: 12.5 -> "13", printf "12".)
// Saved records and report tables stay byte for byte what the C++ `tidal eval` wrote.

// |x| = numerator / 2^shift exactly.
function exactValue(x: number): { numerator: bigint; shift: bigint } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(x));
  const bits = view.getBigUint64(0);
  const biased = Number(bits >> 52n);
  const fraction = bits & ((1n << 52n) - 1n);
  const mantissa = biased === 0 ? fraction : fraction | (1n << 52n);
  const exponent = (biased === 0 ? 1 : biased) - 1075;
  return exponent >= 0 ? { numerator: mantissa << BigInt(exponent), shift: 0n } : { numerator: mantissa, shift: BigInt(-exponent) };
}

// round(numerator / denominator), ties to even.
function roundHalfEven(numerator: bigint, denominator: bigint): bigint {
  const quotient = numerator / denominator;
  const twice = 2n * (numerator % denominator);
  if (twice > denominator || (twice === denominator && quotient % 2n === 1n)) return quotient + 1n;
  return quotient;
}

// round(|x| * 10^scale) as an integer.
function scaled(x: number, scale: number): bigint {
  const { numerator, shift } = exactValue(x);
  const up = scale > 0 ? 10n ** BigInt(scale) : 1n;
  const down = scale < 0 ? 10n ** BigInt(-scale) : 1n;
  return roundHalfEven(numerator * up, down << shift);
}

function notFinite(x: number): string | undefined {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x < 0 ? '-inf' : 'inf';
  return undefined;
}

function signOf(x: number, plus: boolean): string {
  return x < 0 || Object.is(x, -0) ? '-' : plus ? '+' : '';
}

function withPoint(digits: string, decimals: number): string {
  const padded = digits.padStart(decimals + 1, '0');
  return decimals === 0 ? padded : `${padded.slice(0, -decimals)}.${padded.slice(-decimals)}`;
}

// printf("%.{decimals}f"), or "%+.{decimals}f" with plus.
export function formatFixed(x: number, decimals: number, options: { plus?: boolean } = {}): string {
  const special = notFinite(x);
  if (special !== undefined) return options.plus && special === 'inf' ? '+inf' : special;
  return signOf(x, options.plus ?? false) + withPoint(scaled(x, decimals).toString(), decimals);
}

// printf("%.{precision}g").
export function formatGeneral(x: number, precision: number): string {
  const special = notFinite(x);
  if (special !== undefined) return special;
  const p = Math.max(precision, 1);
  if (x === 0) return signOf(x, false) + '0';
  // The decimal exponent after rounding to p significant digits.
  let exponent = Math.floor(Math.log10(Math.abs(x)));
  let digits = scaled(x, p - 1 - exponent);
  if (digits >= 10n ** BigInt(p)) digits = scaled(x, p - 1 - ++exponent);
  else if (digits < 10n ** BigInt(p - 1)) digits = scaled(x, p - 1 - --exponent);
  const strip = (text: string) => (text.includes('.') ? text.replace(/0+$/, '').replace(/\.$/, '') : text);
  if (exponent >= -4 && exponent < p) return signOf(x, false) + strip(withPoint(digits.toString(), p - 1 - exponent));
  const mantissa = strip(withPoint(digits.toString(), p - 1));
  const power = Math.abs(exponent).toString().padStart(2, '0');
  return `${signOf(x, false)}${mantissa}e${exponent < 0 ? '-' : '+'}${power}`;
}

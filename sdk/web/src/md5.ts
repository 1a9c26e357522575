// MD5 (RFC 1321) of the UTF-8 bytes of a text, as 32 lowercase hex digits.
// Small and dependency-free; checked against the RFC's test vectors.

const SHIFT = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
// K[i] = floor(|sin(i + 1)| * 2^32), as the RFC defines it.
const K = SHIFT.concat(SHIFT, SHIFT, SHIFT).map((_, i) => (Math.abs(Math.sin(i + 1)) * 2 ** 32) | 0);

export function md5(text: string): string {
  const bytes = new TextEncoder().encode(String(text));
  const len = bytes.length;
  // 16 little-endian words per 64-byte block: the bytes, 0x80, zeros, the length in bits.
  const words = new Int32Array((((len + 8) >> 6) + 1) * 16);
  for (let i = 0; i < len; i++) words[i >> 2] |= bytes[i] << ((i % 4) * 8);
  words[len >> 2] |= 0x80 << ((len % 4) * 8);
  words[words.length - 2] = len * 8;
  words[words.length - 1] = len / 2 ** 29;

  const h = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
  for (let j = 0; j < words.length; j += 16) {
    let [a, b, c, d] = h;
    for (let i = 0; i < 64; i++) {
      const round = i >> 4;
      const f = round == 0 ? (b & c) | (~b & d) : round == 1 ? (d & b) | (~d & c) : round == 2 ? b ^ c ^ d : c ^ (b | ~d);
      const g = round == 0 ? i : round == 1 ? 5 * i + 1 : round == 2 ? 3 * i + 5 : 7 * i;
      const s = SHIFT[round * 4 + (i % 4)];
      const x = (a + f + K[i] + words[j + (g % 16)]) | 0;
      a = d;
      d = c;
      c = b;
      b = (b + ((x << s) | (x >>> (32 - s)))) | 0;
    }
    [a, b, c, d].forEach((v, k) => (h[k] = (h[k] + v) | 0));
  }
  let hex = "";
  for (const v of h) for (let i = 0; i < 32; i += 8) hex += ((v >>> i) & 255).toString(16).padStart(2, "0");
  return hex;
}

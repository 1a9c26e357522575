// Ids and times.

/** A UUIDv7: 48 bits of Unix milliseconds, then random bits (RFC 9562). */
export function uuid7(now = Date.now()): string {
  const b = new Uint8Array(16);
  if (typeof crypto != "undefined" && crypto.getRandomValues) crypto.getRandomValues(b);
  else for (let i = 0; i < 16; i++) b[i] = Math.random() * 256;
  for (let i = 0; i < 6; i++) b[i] = (now / 2 ** (40 - 8 * i)) & 255;
  b[6] = (b[6] & 15) | 0x70; // version 7
  b[8] = (b[8] & 63) | 0x80; // variant 10
  const hex = Array.from(b, (x) => (x + 256).toString(16).slice(1)).join("");
  return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
}

const pad = (n: number) => String(n).padStart(2, "0");

/** The local wall-clock time as "YYYY-MM-DD HH:MM:SS" (the seed's `_cdpGetLeadTime()`). */
export function leadTime(d = new Date()): string {
  return (
    d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
    pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds())
  );
}

/** The IANA time zone (the server reads local-form times in it), else the UTC offset as "+07:00". */
export function timeZone(): string {
  try {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone) return zone;
  } catch {}
  const off = -new Date().getTimezoneOffset();
  return (off < 0 ? "-" : "+") + pad(Math.abs(off) / 60 | 0) + ":" + pad(Math.abs(off) % 60);
}

/** The size of a text in UTF-8 bytes. */
export const bytes = (text: string) => new TextEncoder().encode(text).length;

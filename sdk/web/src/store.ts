// First-party storage: cookies and localStorage, both of which a browser may block
// (privacy modes, sandboxed frames); every access is guarded.

const YEAR = 365 * 24 * 3600;

// localStorage when it works, else memory for this page only.
const local: Storage | null = (() => {
  try {
    localStorage.setItem("_cdp_t", "1");
    localStorage.removeItem("_cdp_t");
    return localStorage;
  } catch {
    return null;
  }
})();
const memory: Record<string, string> = {};

export const ls = {
  get: (key: string): string | null => (local ? local.getItem(key) : memory[key] ?? null),
  /** False when the browser refused the write (quota). */
  set(key: string, value: string): boolean {
    try {
      local ? local.setItem(key, value) : (memory[key] = value);
      return true;
    } catch {
      return false;
    }
  },
  del(key: string) {
    local ? local.removeItem(key) : delete memory[key];
  },
  keys: (): string[] => (local ? Array.from({ length: local.length }, (_, i) => local.key(i)!) : Object.keys(memory)),
};

export function getCookie(name: string): string | null {
  try {
    const m = document.cookie.match("(?:^|; )" + name + "=([^;]*)");
    return m ? decodeURIComponent(m[1]) : null;
  } catch {
    return null;
  }
}

/** Sets a first-party cookie for a year (null deletes it), on `domain` when given (first_party_domain). */
export function setCookie(name: string, value: string | null, domain?: string) {
  try {
    document.cookie =
      name + "=" + encodeURIComponent(value || "") + "; path=/; max-age=" + (value ? YEAR : 0) +
      (domain ? "; domain=" + domain : "") + "; SameSite=Lax" + (location.protocol == "https:" ? "; Secure" : "");
  } catch {}
}

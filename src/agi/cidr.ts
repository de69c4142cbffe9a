/** Source-address allow-list: IPv4 and IPv6 CIDR blocks (IPv4-mapped IPv6 addresses match IPv4 blocks). */
import net from 'net';
import { DialerError } from '../util/errors';

interface Block {
  v6: boolean;
  bytes: Uint8Array;
  bits: number;
  text: string;
}

function v4Bytes(ip: string): Uint8Array {
  return Uint8Array.from(ip.split('.').map(Number));
}

function v6Bytes(ip: string): Uint8Array {
  // Expand '::' and an embedded dotted quad.
  let s = ip;
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    const b = v4Bytes(s.slice(lastColon + 1));
    s = `${s.slice(0, lastColon + 1)}${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [head, rest] = s.split('::');
  const h = head ? head.split(':') : [];
  const r = rest !== undefined ? (rest ? rest.split(':') : []) : [];
  const fill = rest !== undefined ? 8 - h.length - r.length : 0;
  const groups = [...h, ...Array(fill).fill('0'), ...r].map((g) => parseInt(g, 16));
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = (g >> 8) & 255;
    out[i * 2 + 1] = g & 255;
  });
  return out;
}

/** Parse `10.0.0.0/8`, `192.168.1.5`, `::1`, `fd00::/8`. Throws DialerError('agi_bad_cidr') on nonsense. */
export function parseCidr(text: string): Block {
  const t = text.trim();
  const [addr, bitsText] = t.split('/');
  const kind = net.isIP(addr);
  if (!kind) throw new DialerError('agi_bad_cidr', `not an IP address or CIDR block: ${JSON.stringify(text)}`);
  const v6 = kind === 6;
  const max = v6 ? 128 : 32;
  const bits = bitsText === undefined ? max : Number(bitsText);
  if (!Number.isInteger(bits) || bits < 0 || bits > max)
    throw new DialerError('agi_bad_cidr', `bad prefix length in ${JSON.stringify(text)}`);
  return { v6, bytes: v6 ? v6Bytes(addr) : v4Bytes(addr), bits, text: t };
}

function matches(block: Block, bytes: Uint8Array): boolean {
  let bits = block.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((block.bytes[i] & mask) !== (bytes[i] & mask)) return false;
  }
  return true;
}

export class AllowList {
  private readonly blocks: Block[];
  constructor(entries: string | string[]) {
    const list = (Array.isArray(entries) ? entries : entries.split(/[\s,]+/)).map((e) => e.trim()).filter(Boolean);
    this.blocks = list.map(parseCidr);
  }
  get empty(): boolean {
    return this.blocks.length === 0;
  }
  /** True when the address falls in one of the blocks. */
  allows(address: string | undefined): boolean {
    if (!address) return false;
    let a = address;
    if (a.startsWith('::ffff:') && net.isIPv4(a.slice(7))) a = a.slice(7);
    const kind = net.isIP(a);
    if (!kind) return false;
    const bytes = kind === 6 ? v6Bytes(a) : v4Bytes(a);
    for (const b of this.blocks) if (b.v6 === (kind === 6) && matches(b, bytes)) return true;
    return false;
  }
  toString(): string {
    return this.blocks.map((b) => b.text).join(', ');
  }
}

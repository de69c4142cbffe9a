/**
 * Node-RED's credentials file on first start. Node-RED keeps node credentials encrypted in
 * `<userDir>/<flow file's name>_cred<ext>`; when that file is absent it warns "Encrypted credentials
 * not found" although nothing is wrong (a first start has none). Writing an empty, encrypted set with
 * the installation's key (the file Node-RED writes itself at the first Deploy) removes the false warning.
 */
import { createCipheriv, createHash, randomBytes } from 'crypto';
import fs from 'fs';
import path from 'path';

/** Where Node-RED reads the credentials of `flowFile` (its localfilesystem storage's rule). */
export function credentialsFileOf(userDir: string, flowFile: string): string {
  const ext = path.extname(flowFile);
  return path.join(userDir, `${path.basename(flowFile, ext)}_cred${ext}`);
}

/** Node-RED's encrypted form of `creds` under `secret` (aes-256-ctr, key sha256(secret), hex IV first). */
export function encryptCredentials(secret: string, creds: object): { $: string } {
  const key = createHash('sha256').update(secret).digest();
  const iv = randomBytes(16);
  const c = createCipheriv('aes-256-ctr', key, iv);
  return { $: iv.toString('hex') + c.update(JSON.stringify(creds), 'utf8', 'base64') + c.final('base64') };
}

/** An empty encrypted credentials file for `flowFile`, unless one exists. True when written. */
export function seedCredentials(userDir: string, flowFile: string, secret: string): boolean {
  const file = credentialsFileOf(userDir, flowFile);
  if (fs.existsSync(file)) return false;
  fs.writeFileSync(file, JSON.stringify(encryptCredentials(secret, {})) + '\n', { mode: 0o600, flag: 'wx' });
  return true;
}

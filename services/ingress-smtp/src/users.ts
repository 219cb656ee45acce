import { readFile } from 'node:fs/promises';
import { isPasswordHash, verifyPassword } from './password.js';

/** SMTP AUTH users: config `ingress.auth.users` plus an optional `username:hash` file. */
export interface UserStore {
  readonly size: number;
  verify(username: string, password: string): Promise<boolean>;
}

// Verified against for unknown users, so "no such user" and "wrong password" take the same time.
const DUMMY = '$scrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

export async function loadUsers(users: Record<string, string>, file?: string): Promise<UserStore> {
  const map = new Map<string, string>(Object.entries(users));
  if (file) {
    const text = await readFile(file, 'utf8');
    text.split(/\r?\n/).forEach((line, i) => {
      const l = line.trim();
      if (!l || l.startsWith('#')) return;
      const at = l.lastIndexOf(':$scrypt$');
      const user = at > 0 ? l.slice(0, at) : '';
      const hash = at > 0 ? l.slice(at + 1) : '';
      if (!user || !isPasswordHash(hash)) throw new Error(`${file}:${i + 1}: expected username:$scrypt$… hash`);
      map.set(user, hash);
    });
  }
  return {
    size: map.size,
    async verify(username, password) {
      const hash = map.get(username);
      const ok = await verifyPassword(password, hash ?? DUMMY);
      return ok && hash !== undefined;
    },
  };
}

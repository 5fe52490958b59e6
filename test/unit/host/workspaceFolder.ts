// A workspace folder on disk for the repository tests: the files are written in the order
// given, each 10 s newer than the one before, so the layout order (modification time) is known.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export async function writeWorkspace(files: Record<string, string | Buffer>): Promise<string> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'tidal-repo-'));
  let time = 1_700_000_000;
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(root, name);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, content);
    await fs.utimes(file, time, time);
    time += 10;
  }
  return root;
}

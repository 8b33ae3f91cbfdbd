import { hashPassword } from '../smtp/password-hash.ts';
import type { CommandContext, CommandResult } from './main.ts';

/** `rookery hash-password`: one password in on stdin, its scrypt hash out on stdout. */
export async function execute(_values: Record<string, unknown>, _context: CommandContext): Promise<CommandResult> {
  const password = process.stdin.isTTY ? await promptHidden('Password: ') : stripFinalNewline(await readAll(process.stdin));
  if (password === null) {
    process.stderr.write('rookery hash-password: cancelled\n');
    return 1;
  }
  if (password.length === 0) {
    process.stderr.write('rookery hash-password: empty password\n');
    return 1;
  }
  process.stdout.write(`${await hashPassword(password)}\n`);
  return 0;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/** `echo secret | rookery hash-password` must hash "secret", not "secret\n". */
function stripFinalNewline(text: string): string {
  return text.replace(/\r?\n$/, '');
}

/** Reads one line from the terminal without echoing it; null on Ctrl-C / Ctrl-D. */
function promptHidden(prompt: string): Promise<string | null> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  let typed = '';
  return new Promise((resolve) => {
    const finish = (value: string | null) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      resolve(value);
    };
    const onData = (data: string) => {
      for (const char of data) {
        if (char === '\r' || char === '\n') return finish(typed);
        if (char === '\u0003' || char === '\u0004') return finish(null);
        if (char === '\u007f' || char === '\b') typed = [...typed].slice(0, -1).join('');
        else typed += char;
      }
    };
    stdin.on('data', onData);
  });
}

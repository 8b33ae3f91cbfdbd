import type { NewMessage } from '../../src/storage/store.ts';

/**
 * A message as the queue stores it, for tests that fill a store directly rather than submit:
 * from app@sender.test to user@dest.test, accepted over SMTP at `createdAt` and due then, in the
 * default pool, with a short body. `overrides` replaces any field.
 */
export function newMessage(id: string, createdAt: number, overrides: Partial<NewMessage> = {}): NewMessage {
  return {
    id,
    sender: 'app@sender.test',
    recipients: ['user@dest.test'],
    messageIdHeader: `<${id}@sender.test>`,
    body: Buffer.from(`Subject: ${id}\r\n\r\nbody\r\n`),
    submitter: 'app',
    source: 'smtp',
    clientAddress: '192.0.2.7',
    createdAt,
    dueAt: createdAt,
    pool: 'default',
    ...overrides,
  };
}

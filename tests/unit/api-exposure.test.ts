import { describe, expect, it } from 'vitest';
import { apiExposureWarning } from '../../src/control-api/exposure.ts';

const on = (host: string) => apiExposureWarning({ listen: { host, port: 8025 }, tokens: [] });
const HASH = `sha256:${'ab'.repeat(32)}`;

describe('apiExposureWarning', () => {
  it.each(['127.0.0.1', '127.8.9.10', '::1', '[::1]', '::ffff:127.0.0.1', 'localhost', 'LOCALHOST'])('is silent on loopback: %s', (host) => {
    expect(on(host)).toBeNull();
  });

  it.each(['0.0.0.0', '::', '', '10.0.0.5', '2001:db8::1', 'api.internal'])('warns beyond loopback, naming api.listen.host: %j', (host) => {
    expect(on(host)).toMatchObject({ code: 'API_EXPOSED', path: 'api.listen.host' });
  });

  it('says where it listens and what to do', () => {
    expect(on('0.0.0.0')!.message).toBe(
      'the control API has no API tokens configured and listens beyond this machine (0.0.0.0, port 8025): whoever reaches it reads its health and metrics; bind it to 127.0.0.1, or keep the port behind a firewall',
    );
    expect(on('')!.message).toContain('(every address, port 8025)');
  });

  it('with API tokens, still warns that they cross the network readable and the probes answer anyone', () => {
    const warning = apiExposureWarning({ listen: { host: '0.0.0.0', port: 8025 }, tokens: [{ name: 'ops', role: 'operator', hash: HASH }] });
    expect(warning).toMatchObject({ code: 'API_EXPOSED', path: 'api.listen.host' });
    expect(warning!.message).toBe(
      'the control API listens beyond loopback (0.0.0.0, port 8025) over plain HTTP: API tokens cross the network readable and /metrics and /readyz answer anyone; bind it to 127.0.0.1, or put it behind a TLS proxy and a firewall',
    );
    expect(apiExposureWarning({ listen: { host: '127.0.0.1', port: 8025 }, tokens: [{ name: 'ops', role: 'operator', hash: HASH }] })).toBeNull();
  });
});

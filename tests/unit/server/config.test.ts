import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, ConfigError } from '../../../server/config.ts';

describe('config', () => {
  it('runs the embedded default with no environment', () => {
    const c = loadConfig({});
    assert.equal(c.host, '0.0.0.0');
    assert.equal(c.port, 8080);
    assert.ok(c.mediaWorkers >= 1);
    assert.deepEqual(c.rtcHostAddresses, []);
    assert.equal(c.maxMessageBytes, 65536);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.echo));
  });

  it('reads every variable', () => {
    const c = loadConfig({
      HOST: '127.0.0.1', PORT: '9000', MEDIA_WORKERS: '3', RTC_PORT_RANGE: '50000-50100',
      RTC_HOST_ADDRESSES: '127.0.0.1, 10.0.0.5', RTC_ANNOUNCED_ADDRESS: '203.0.113.7', MAX_SESSIONS: '7',
      SESSION_IDLE_TIMEOUT_MS: '5000', SESSION_MAX_DURATION_MS: '60000', SIGNAL_MAX_MESSAGE_BYTES: '2048',
      ECHO_END_SILENCE_MS: '300', JITTER_MAX_DELAY_MS: '120',
    });
    assert.equal(c.port, 9000);
    assert.equal(c.mediaWorkers, 3);
    assert.deepEqual(c.rtcPortRange, [50000, 50100]);
    assert.deepEqual(c.rtcHostAddresses, ['127.0.0.1', '10.0.0.5']);
    assert.equal(c.rtcAnnouncedAddress, '203.0.113.7');
    assert.equal(c.maxSessions, 7);
    assert.equal(c.echo.endSilenceMs, 300);
    assert.equal(c.jitterBuffer.maxDelayMs, 120);
  });

  it('fails naming each bad variable', () => {
    const bad: Record<string, string> = {
      PORT: 'eighty', MEDIA_WORKERS: '0', RTC_PORT_RANGE: '5000-4000', RTC_HOST_ADDRESSES: 'not-an-ip',
      MAX_SESSIONS: '-1', LOG_LEVEL: 'loud', HOST: 'example.com', RTC_ANNOUNCED_ADDRESS: '::1',
    };
    for (const [name, value] of Object.entries(bad)) {
      assert.throws(() => loadConfig({ [name]: value }), (e: unknown) => e instanceof ConfigError && e.message.includes(name), name);
    }
    assert.throws(() => loadConfig({ JITTER_MIN_DELAY_MS: '300', JITTER_MAX_DELAY_MS: '100' }), /JITTER_MIN_DELAY_MS/);
  });

  it('reads ICE servers for clients: STUN as given, TURN with its static credentials (never echoed)', () => {
    assert.deepEqual(loadConfig({}).iceServers, []);
    const c = loadConfig({
      ICE_SERVERS: 'stun:stun.example.org:3478, turn:turn.example.org:3478?transport=udp,turns:turn.example.org:5349',
      ICE_SERVER_USERNAME: 'user1',
      ICE_SERVER_CREDENTIAL: 's3cret-value',
    });
    assert.deepEqual(c.iceServers, [
      { urls: ['stun:stun.example.org:3478'] },
      { urls: ['turn:turn.example.org:3478?transport=udp', 'turns:turn.example.org:5349'], username: 'user1', credential: 's3cret-value' },
    ]);
    assert.throws(() => loadConfig({ ICE_SERVERS: 'http://stun.example.org' }), /ICE_SERVERS/);
    assert.throws(() => loadConfig({ ICE_SERVERS: 'turn:turn.example.org' }), /ICE_SERVER_USERNAME and ICE_SERVER_CREDENTIAL/);
    assert.throws(
      () => loadConfig({ ICE_SERVERS: 'turn:t.example.org', ICE_SERVER_USERNAME: 'u', ICE_SERVER_CREDENTIAL: 'with"quote' }),
      (e: unknown) => e instanceof ConfigError && e.message.includes('ICE_SERVER_CREDENTIAL') && !e.message.includes('with"quote'),
    );
  });
});

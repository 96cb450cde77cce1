import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { CircuitBreaker, type CircuitState } from '../../../providers/circuit-breaker.ts';
import { ProviderError } from '../../../providers/types.ts';

const serverError = ProviderError.fromHttpStatus('cloud', 503, 'unavailable');
const badRequest = ProviderError.fromHttpStatus('cloud', 400, 'bad request');
const abort = new DOMException('aborted', 'AbortError');

/** A breaker on a clock the test moves, recording every state change. */
function rig(options: { failureThreshold?: number; openMs?: number } = {}) {
  let time = 0;
  const breaker = new CircuitBreaker('cloud', { failureThreshold: 3, openMs: 1_000, ...options, now: () => time });
  const changes: Array<[CircuitState, CircuitState]> = [];
  breaker.on('statechange', (state, previous) => changes.push([state, previous]));
  return { breaker, changes, advance: (ms: number) => void (time += ms) };
}

function failOnce(breaker: CircuitBreaker, error: unknown = serverError): void {
  const permit = breaker.acquire();
  assert.ok(permit, 'expected the breaker to admit the call');
  permit.fail(error);
}

describe('CircuitBreaker', () => {
  it('opens after failureThreshold consecutive failures, retryable or not', () => {
    const { breaker, changes } = rig();
    failOnce(breaker, serverError);
    failOnce(breaker, badRequest);
    assert.equal(breaker.state, 'closed');
    failOnce(breaker, serverError);
    assert.equal(breaker.state, 'open');
    assert.equal(breaker.acquire(), undefined);
    assert.deepEqual(changes, [['open', 'closed']]);
    assert.equal(breaker.toJSON().opens, 1);
  });

  it('a success resets the count of consecutive failures', () => {
    const { breaker } = rig();
    failOnce(breaker);
    failOnce(breaker);
    breaker.acquire()!.succeed();
    failOnce(breaker);
    failOnce(breaker);
    assert.equal(breaker.state, 'closed');
    assert.equal(breaker.toJSON().consecutiveFailures, 2);
  });

  it('aborts and releases never count', () => {
    const { breaker } = rig({ failureThreshold: 1 });
    breaker.acquire()!.fail(abort);
    breaker.acquire()!.release();
    assert.equal(breaker.state, 'closed');
    assert.equal(breaker.toJSON().consecutiveFailures, 0);
  });

  it('half-opens after openMs and lets exactly one trial through; success closes', () => {
    const { breaker, changes, advance } = rig({ failureThreshold: 1 });
    failOnce(breaker);
    advance(999);
    assert.equal(breaker.state, 'open');
    advance(1);
    assert.equal(breaker.state, 'half-open');
    const trial = breaker.acquire();
    assert.ok(trial);
    assert.equal(breaker.acquire(), undefined, 'a second call while the trial runs');
    trial.succeed();
    assert.equal(breaker.state, 'closed');
    assert.ok(breaker.acquire());
    assert.deepEqual(changes, [
      ['open', 'closed'],
      ['half-open', 'open'],
      ['closed', 'half-open'],
    ]);
  });

  it('a failed trial re-opens for another openMs', () => {
    const { breaker, advance } = rig({ failureThreshold: 2 });
    failOnce(breaker);
    failOnce(breaker);
    advance(1_000);
    failOnce(breaker, badRequest);
    assert.equal(breaker.state, 'open', 'one failure re-opens, whatever the threshold');
    advance(999);
    assert.equal(breaker.acquire(), undefined);
    advance(1);
    assert.equal(breaker.state, 'half-open');
    assert.equal(breaker.toJSON().opens, 2);
  });

  it('an aborted trial frees the slot for the next trial', () => {
    const { breaker, advance } = rig({ failureThreshold: 1 });
    failOnce(breaker);
    advance(1_000);
    breaker.acquire()!.fail(abort);
    assert.equal(breaker.state, 'half-open');
    assert.ok(breaker.acquire(), 'the next caller becomes the trial');
  });

  it('a trial silent for openMs stops blocking the next one', () => {
    const { breaker, advance } = rig({ failureThreshold: 1 });
    failOnce(breaker);
    advance(1_000);
    const longLived = breaker.acquire();
    assert.ok(longLived);
    advance(999);
    assert.equal(breaker.acquire(), undefined);
    advance(1);
    assert.ok(breaker.acquire());
  });

  it('ignores reports from calls admitted before the circuit changed state', () => {
    const { breaker, advance } = rig({ failureThreshold: 1 });
    const slow = breaker.acquire()!;
    failOnce(breaker);
    advance(1_000);
    slow.succeed();
    assert.equal(breaker.state, 'half-open', 'a stale success does not close');
    const trial = breaker.acquire()!;
    slow.fail(serverError);
    assert.equal(breaker.state, 'half-open', 'a stale failure does not re-open');
    trial.succeed();
    assert.equal(breaker.state, 'closed');
  });

  it('a long-lived call keeps reporting after its own report moved the circuit', () => {
    const { breaker, advance } = rig({ failureThreshold: 1 });
    failOnce(breaker);
    advance(1_000);
    const stream = breaker.acquire()!;
    stream.succeed(); // first final: closes
    assert.equal(breaker.state, 'closed');
    stream.fail(serverError); // the same stream later drops
    assert.equal(breaker.state, 'open');
  });

  it('a listener that throws does not break the breaker', async () => {
    const { breaker } = rig({ failureThreshold: 1 });
    const warned = once(process, 'warning');
    breaker.on('statechange', () => {
      throw new Error('listener bug');
    });
    failOnce(breaker);
    assert.equal(breaker.state, 'open');
    const [warning] = (await warned) as [Error];
    assert.match(warning.message, /listener bug/);
  });
});

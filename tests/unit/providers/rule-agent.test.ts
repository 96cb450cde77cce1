import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RuleAgent } from '../../../providers/local/rule-agent.ts';
import type { AgentMessage } from '../../../providers/types.ts';

// 2024-03-05 15:07 UTC
const NOW = Date.UTC(2024, 2, 5, 15, 7);
const agent = new RuleAgent({ now: () => NOW, timeZone: 'UTC' });

async function collect(userText: string, history: AgentMessage[] = [], signal = new AbortController().signal, by = agent): Promise<string[]> {
  const deltas: string[] = [];
  for await (const delta of by.respond({ userText, history, signal })) deltas.push(delta);
  return deltas;
}

async function reply(userText: string, history: AgentMessage[] = [], by = agent): Promise<string> {
  return (await collect(userText, history, undefined, by)).join('');
}

describe('RuleAgent', () => {
  test('answers the time from the injected clock, also for misrecognised questions', async () => {
    for (const asked of ['what time is it', 'What time is it?', "what time isn't", "what's the time", 'hi what time is it', 'tell me the time', 'do you have the time']) {
      assert.equal(await reply(asked), "It's 3:07 PM.", asked);
    }
    assert.equal(await reply('what time is it', [], new RuleAgent({ now: () => NOW, timeZone: 'Europe/Berlin' })), "It's 4:07 PM.");
  });

  test('greets', async () => {
    for (const said of ['hello', 'Hi!', 'hello there', 'hey', 'good morning']) assert.equal(await reply(said), 'Hello! How can I help you?', said);
  });

  test('says what it can do', async () => {
    for (const said of ['what can you do', 'What can you do?', 'help', 'can you help me please']) {
      assert.match(await reply(said), /^I can tell you the time/, said);
    }
  });

  test('says goodbye', async () => {
    for (const said of ['bye', 'goodbye', 'Good bye!', 'ok bye', 'good by', 'see you later']) {
      assert.equal(await reply(said), 'Goodbye! It was nice talking to you.', said);
    }
  });

  test('repeats its previous reply from the history', async () => {
    const history: AgentMessage[] = [
      { role: 'user', text: 'what time is it' },
      { role: 'assistant', text: "It's 9:15 AM." },
      { role: 'user', text: 'thanks' },
      { role: 'assistant', text: 'You are welcome, anything else?' },
    ];
    for (const said of ['say that again', 'Repeat.', 'can you repeat that', 'what did you say']) {
      assert.equal(await reply(said, history), 'You are welcome, anything else?', said);
    }
    assert.match(await reply('say that again'), /^I haven't said anything yet/);
  });

  test('falls back to saying briefly what it heard', async () => {
    const answer = await reply('The weather is lovely today in the park by the river, is it not?');
    assert.equal(answer, 'I heard you say: the weather is lovely today in the park. I can tell you the time, or say help to hear what I can do.');
    assert.match(await reply('   '), /didn't catch that/);
  });

  test('streams word-sized deltas', async () => {
    const deltas = await collect('hello');
    assert.deepEqual(deltas, ['Hello!', ' How', ' can', ' I', ' help', ' you?']);
  });

  test('stops at an abort', async () => {
    const controller = new AbortController();
    const deltas: string[] = [];
    for await (const delta of agent.respond({ userText: 'what can you do', history: [], signal: controller.signal })) {
      deltas.push(delta);
      if (deltas.length === 2) controller.abort();
    }
    assert.equal(deltas.length, 2);
    controller.abort();
    assert.deepEqual(await collect('hello', [], controller.signal), []);
  });
});

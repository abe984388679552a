// One McpServer per session, built for the identity that initialized it: tools/list and every
// tool result then belong to that identity, as with Omni where tools/list is per user.
import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { bestTopic } from './directory.mjs';

const ALL_TOOLS = ['pickModel', 'pickTopic', 'getData', 'askOmni', 'checkStatus', 'searchOmniDocs'];
// A Viewer may look but not query: no getData, no askOmni.
const TOOLS_BY_ROLE = {
  Viewer: ['pickModel', 'pickTopic', 'searchOmniDocs', 'checkStatus'],
  Querier: ALL_TOOLS,
  Admin: ALL_TOOLS,
};

// ctx: { directory, control, jobs } shared by all sessions.
export function buildMcpServer(identity, ctx) {
  const server = new McpServer({ name: 'omni', version: 'fake' }, { capabilities: { logging: {} } });
  const tools = makeTools(identity.user, ctx);
  for (const name of TOOLS_BY_ROLE[identity.user.role] ?? []) {
    const { description, inputSchema, run } = tools[name];
    server.registerTool(name, { description, inputSchema }, (args, extra) => run(args, extra));
  }
  return server;
}

function makeTools(user, { directory, control, jobs }) {
  // Every result names the identity that ran it, so tests can tell whose credential reached Omni.
  const ok = obj => ({ content: [{ type: 'text', text: JSON.stringify({ ...obj, runAs: user.id }) }] });
  const fail = error => ({ isError: true, content: [{ type: 'text', text: JSON.stringify({ error, runAs: user.id }) }] });

  // X-MCP-Model-ID / X-MCP-Topic-Name pin the request; Omni reads them per request.
  const pinned = (extra, name) => extra.requestInfo?.headers?.[name] || undefined;
  // The models a call may use: the one asked for (argument, else X-MCP-Model-ID), else all the
  // user's models. An unreachable model is as absent as a missing one.
  const candidateModels = (modelId, extra) => {
    const id = modelId ?? pinned(extra, 'x-mcp-model-id');
    if (!id) return directory.modelsFor(user);
    const model = directory.modelFor(user, id);
    return model ? [model] : [];
  };

  return {
    pickModel: {
      description: 'Lists the shared models you can query, with their ids.',
      inputSchema: {},
      run: () => ok({ models: directory.modelsFor(user).map(({ id, name }) => ({ id, name })) }),
    },
    pickTopic: {
      description: 'Picks the topic of a model most relevant to a prompt.',
      inputSchema: { prompt: z.string(), modelId: z.string().optional() },
      run: ({ prompt, modelId }, extra) => {
        const models = candidateModels(modelId, extra);
        const pinnedTopic = pinned(extra, 'x-mcp-topic-name');
        const pick = pinnedTopic ? findTopic(models, pinnedTopic) : bestTopic(models, prompt);
        if (!pick) return fail(pinnedTopic ? `Topic ${pinnedTopic} not found` : 'Model not found');
        return ok({ modelId: pick.model.id, topicId: pick.topic.id, topicName: pick.topic.name });
      },
    },
    getData: {
      description: 'Turns a question into an Omni query, runs it and returns the rows.',
      inputSchema: { prompt: z.string(), modelId: z.string().optional(), topicName: z.string().optional() },
      run: async ({ prompt, modelId, topicName }, extra) => {
        await announceAndMaybeHold(user, control, extra);
        const flooded = await floodIfArmed(user, control, extra);
        const models = candidateModels(modelId, extra);
        if (!models.length) return fail('Model not found');
        // X-MCP-Topic-Name confines the session to one topic.
        const pinnedTopic = pinned(extra, 'x-mcp-topic-name');
        if (pinnedTopic && topicName && topicName !== pinnedTopic) return fail(`Topic ${topicName} is not allowed`);
        const wanted = pinnedTopic ?? topicName;
        const pick = wanted ? findTopic(models, wanted) : bestTopic(models, prompt);
        if (!pick) return fail(`Topic ${wanted} not found`);
        const rows = runQuery(directory, user, pick.model, pick.topic);
        return ok(flooded ? { ...rows, flooded } : rows);
      },
    },
    askOmni: {
      description: 'Submits an asynchronous Omni agent job; poll it with checkStatus.',
      inputSchema: {
        prompt: z.string(), modelId: z.string().optional(), topicName: z.string().optional(),
        conversationId: z.string().optional(),
      },
      run: ({ prompt, conversationId = randomUUID() }) => {
        const jobId = randomUUID();
        jobs.set(jobId, { ownerId: user.id, prompt, conversationId });
        return ok({ jobId, conversationId, omniChatUrl: `https://fake.omniapp.co/chat/${conversationId}` });
      },
    },
    checkStatus: {
      description: 'Reports the status of an askOmni job.',
      inputSchema: { jobId: z.string() },
      run: ({ jobId }) => {
        const job = jobs.get(jobId);
        // Another user's job is as invisible as a job that does not exist.
        if (!job || job.ownerId !== user.id) return fail('Job not found');
        return ok({ jobId, status: 'COMPLETE', conversationId: job.conversationId,
          result: { summary: `Answered: ${job.prompt}` } });
      },
    },
    searchOmniDocs: {
      description: "Answers a question from Omni's documentation, with sources.",
      inputSchema: { question: z.string() },
      run: ({ question }) => {
        const words = question.toLowerCase().match(/[a-z0-9-]+/g) ?? [];
        const hits = directory.docs().filter(d => d.keywords.some(k => words.includes(k)));
        return ok({
          answer: hits[0]?.answer ?? 'No documentation matched the question.',
          sources: hits.map(({ title, url }) => ({ title, url })),
        });
      },
    },
  };
}

function findTopic(models, name) {
  for (const model of models) {
    const topic = model.topics.find(t => t.name === name);
    if (topic) return { model, topic };
  }
  return undefined;
}

// The generated query and its rows, restricted by the user's row-level access.
function runQuery(directory, user, model, topic) {
  const fields = topic.views.flatMap(v => [...v.dimensions, ...v.measures]);
  const measure = topic.views.flatMap(v => v.measures)[0];
  const result = directory.rowsFor(user, topic).sort((a, b) => b[measure] - a[measure]);
  return {
    modelId: model.id,
    topic: topic.name,
    query: { table: topic.base_view_name, fields, filters: directory.accessFilters(user, topic),
      sorts: [{ column_name: measure, sort_descending: true }], limit: 500 },
    result,
  };
}

// Streaming hook for tests: progress if the client asked for it; when a hold is armed, a log
// message on this request's own SSE stream (extra.sendNotification, not server.sendLoggingMessage
// which would go to the GET stream), then wait for /_fake/release or the client's cancellation.
async function announceAndMaybeHold(user, control, extra) {
  const progressToken = extra._meta?.progressToken;
  if (progressToken !== undefined) {
    await extra.sendNotification({ method: 'notifications/progress',
      params: { progressToken, progress: 0, total: 1, message: 'getData started' } });
  }
  if (!control.hold.armed) return;
  await extra.sendNotification({ method: 'notifications/message',
    params: { level: 'info', logger: 'omni', data: 'getData started' } });
  const seq = extra.authInfo?.extra?.seq;
  control.event({ type: 'hold-waiting', seq, runAs: user.id, requestId: extra.requestId });
  const stream = { runAs: user.id, send: n => extra.sendNotification(n) }; // for /_fake/list-changed
  control.hold.streams.add(stream);
  try {
    await control.waitForRelease(extra.signal);
  } finally {
    control.hold.streams.delete(stream);
  }
  control.event({ type: extra.signal.aborted ? 'tool-cancelled' : 'hold-released', seq, runAs: user.id });
}

// Back-pressure hook for tests (/_fake/flood): the getData call that takes an armed flood first
// sends `bytes` bytes of log data on its own SSE stream, as notifications/message (logger
// "fake-flood") whose data is "<index>:" padded with "x" to `chunk` bytes (the last one may be
// shorter). The SDK queues SSE events without waiting for the peer, so the whole flood is produced
// at once and leaves the fake as fast as the peer reads. Returns {count, bytes} (data bytes), or
// undefined when no flood was armed.
async function floodIfArmed(user, control, extra) {
  const seq = extra.authInfo?.extra?.seq;
  const run = control.takeFlood(seq, user.id);
  if (!run) return undefined;
  control.event({ type: 'flood-started', seq, runAs: user.id, bytes: run.target, chunk: run.chunk });
  const pad = 'x'.repeat(run.chunk);
  while (run.bytes < run.target && !extra.signal.aborted) {
    const len = Math.min(run.chunk, run.target - run.bytes);
    const head = `${run.count}:`;
    const data = len > head.length ? head + pad.slice(0, len - head.length) : head.slice(0, len);
    await extra.sendNotification({ method: 'notifications/message',
      params: { level: 'info', logger: 'fake-flood', data } });
    run.count += 1;
    run.bytes += len;
    // Let the fake answer its control API (and write what the peer takes) while producing.
    if (run.count % 256 === 0) await new Promise(resolve => setImmediate(resolve));
  }
  run.done = true;
  control.event({ type: extra.signal.aborted ? 'flood-cancelled' : 'flood-done', seq, count: run.count, bytes: run.bytes });
  return { count: run.count, bytes: run.bytes };
}

// Omni's REST metadata endpoints, shapes per omni-openapi.json (whoami per omni-mcp.md, it is not in
// the OpenAPI document). Data per identity: a user sees only the models it may reach.
import { topicSummary } from './directory.mjs';
import { sendJson } from './control.mjs';

const STAMP = '2025-01-01T00:00:00.000Z';
const notFound = res => sendJson(res, 404, { detail: 'Not found', status: 404 });

export function handleRest(req, res, url, identity, directory) {
  if (req.method !== 'GET') return sendJson(res, 405, { detail: 'Method not allowed', status: 405 }, { Allow: 'GET' });
  const { user } = identity;
  const parts = url.pathname.split('/').slice(1).map(safeDecode); // ['api','v1',...]
  const [api, v1, resource, modelId, topic, topicName, ...rest] = parts;
  if (api !== 'api' || v1 !== 'v1' || rest.length) return notFound(res);

  if (resource === 'whoami' && parts.length === 3) return sendJson(res, 200, whoami(identity, directory));
  if (resource !== 'models') return notFound(res);
  if (parts.length === 3) return sendJson(res, 200, listModels(directory.modelsFor(user), url.searchParams));

  const model = directory.modelFor(user, modelId);
  if (!model || topic !== 'topic') return notFound(res);
  if (parts.length === 5) return sendJson(res, 200, { success: true, topics: model.topics.map(topicSummary) });
  const found = model.topics.find(t => t.name === topicName);
  if (!found) return notFound(res);
  return sendJson(res, 200, { success: true, topic: topicDetail(found) });
}

// A malformed escape names nothing that exists: it ends up as a 404.
function safeDecode(part) {
  try { return decodeURIComponent(part); } catch { return '\0'; }
}

function whoami({ user, keyScope }, directory) {
  const role = user.role.toUpperCase();
  return {
    keyScope,
    orgRole: directory.isAdmin(user) ? 'ADMIN' : 'MEMBER',
    user: { id: user.id, membershipId: user.membershipId, name: user.name, email: user.email },
    rolesByModel: Object.fromEntries(directory.modelsFor(user).map(m => [m.id, role])),
  };
}

function listModels(models, params) {
  // Every model of the fake is SHARED; another modelKind filter matches none of them.
  const kind = params.get('modelKind');
  const records = models.filter(() => !kind || kind === 'SHARED').map(m => ({
    id: m.id, name: m.name, modelKind: 'SHARED', baseModelId: null, connectionId: m.connectionId,
    createdAt: STAMP, updatedAt: STAMP, deletedAt: null,
  }));
  return { pageInfo: { hasNextPage: false, nextCursor: null, pageSize: 20, totalRecords: records.length }, records };
}

function topicDetail(topic) {
  return {
    ...topicSummary(topic),
    relationships: [],
    views: topic.views.map(v => ({
      name: v.name,
      dimensions: v.dimensions.map(field_name => ({ field_name })),
      measures: v.measures.map(field_name => ({ field_name })),
    })),
  };
}

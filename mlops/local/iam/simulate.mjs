// The policy evaluator behind mlops/local/iam/simulator.py: @cloud-copilot/iam-simulate in a
// long-lived Node process speaking JSON lines.
//
// First line out: {"ready": true, "version": "<iam-simulate version>"} or {"fatal": "..."}.
// Then one answer line per request line, in order:
//   in:  {"id", "principal", "accountId", "action", "resource", "context",
//         "policySet", "identityPolicies"?: [{name, policy}], "resourcePolicy"?: {...}}
//        identityPolicies, when present, are stored under policySet; later requests name the
//        set only (a batch sends a role's policies once).
//   out: {"id", "result": "Allowed"|"ImplicitlyDenied"|"ExplicitlyDenied"|"error",
//         "explanation", "deniedBy"?, "ignoredContextKeys"}
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'

const PACKAGE = '@cloud-copilot/iam-simulate'
const out = (message) => process.stdout.write(JSON.stringify(message) + '\n')

let simulate
try {
  simulate = await import(PACKAGE)
} catch (error) {
  out({ fatal: `cannot load ${PACKAGE} (${error.code ?? error.message}): run \`make install\`` })
  process.exit(1)
}
const version = JSON.parse(
  readFileSync(new URL('../../package.json', import.meta.resolve(PACKAGE)), 'utf8')
).version

const policySets = new Map()

const asList = (value) => (value === undefined ? [] : [value].flat())

// Whether an IAM resource pattern (policy side: * and ? are wildcards) covers `literal`, where
// a * in `literal` is an ordinary character: a request for "alarm:*" needs a grant of all alarms.
function covers(pattern, literal) {
  const regex = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')
  return new RegExp(`^${regex}$`, 's').test(literal)
}

function statementName(analysis, kind) {
  const sid = analysis.statement.sid?.()
  const index = analysis.statement.index?.()
  const policy = kind === 'identity' ? `identity policy '${analysis.policyId}'` : `${kind} policy`
  return `${policy} statement ${index ?? analysis.explain.identifier}${sid ? ` (Sid ${sid})` : ''}`
}

function conditionText(explain, context) {
  const values = asList(explain.values).map((v) => v.value)
  const key = explain.conditionKeyValue.toLowerCase()
  const found = Object.entries(context).find(([name]) => name.toLowerCase() === key)
  const actual = found ? `request: ${JSON.stringify(found[1])}` : 'the request has no such key'
  return `${explain.operator} ${explain.conditionKeyValue} ${JSON.stringify(values)} (${actual})`
}

// Statements that name the action but miss on the resource or a condition: why a denial.
function nearMisses(statements, kind, context) {
  return statements
    .filter((s) => s.actionMatch && s.statement.effect?.() !== 'Deny')
    .map((s) => {
      const name = statementName(s, kind)
      if (!s.resourceMatch) {
        const resources = asList(s.explain.resources).map((r) => r.resource)
        return `${name} allows the action on ${JSON.stringify(resources)}, not this resource`
      }
      if (s.conditionMatch !== 'Match') {
        const failed = (s.explain.conditions ?? []).filter((c) => !c.matches).map((c) => conditionText(c, context))
        return `${name} allows the action but its condition fails: ${failed.join('; ')}`
      }
      return `${name} names the action but does not apply (principal ${s.principalMatch})`
    })
}

function explainAnalysis(analysis, context) {
  const lines = []
  let deniedBy
  if (analysis.result === 'Allowed') {
    for (const grant of simulate.getGrantReasons(analysis)) {
      const sid = grant.statementId ? ` (Sid ${grant.statementId})` : ''
      const policy = grant.policyIdentifier ? ` '${grant.policyIdentifier}'` : ''
      lines.push(`allowed by ${grant.policyType} policy${policy} statement ${grant.statementIndex}${sid}`)
    }
    if (lines.length === 0) lines.push('allowed (the service allows it to every principal)')
    return { lines, deniedBy }
  }
  for (const denial of simulate.getDenialReasons(analysis)) {
    deniedBy ??= denial.policyType
    if (denial.denialType === 'Explicit') {
      const sid = denial.statementId ? ` (Sid ${denial.statementId})` : ''
      const policy = denial.policyIdentifier ? ` '${denial.policyIdentifier}'` : ''
      lines.push(`explicitly denied by ${denial.policyType} policy${policy} statement ${denial.statementIndex}${sid}`)
    } else {
      lines.push(`no ${denial.policyType} policy allows it`)
    }
  }
  lines.push(...nearMisses(analysis.identityAnalysis?.unmatchedStatements ?? [], 'identity', context))
  lines.push(...nearMisses(analysis.resourceAnalysis?.unmatchedStatements ?? [], 'resource', context))
  if (analysis.blockedBy?.length) lines.push(`blocked by: ${analysis.blockedBy.join(', ')}`)
  if (lines.length === 0) {
    // e.g. a KMS key: identity policies count only when the key policy trusts the account.
    const resource = analysis.resourceAnalysis?.result ?? 'none given'
    lines.push(
      `identity-based policies: ${analysis.identityAnalysis?.result}; resource-based policy: ${resource}` +
        (analysis.identityAnalysis?.result === 'Allowed' ? ' (the resource policy must allow the principal or trust its account)' : '')
    )
    deniedBy ??= analysis.identityAnalysis?.result === 'Allowed' ? 'resource' : 'identity'
  }
  return { lines, deniedBy }
}

// A wildcard resource (a List call naming no resource): iam-simulate answers Allowed when any
// narrower pattern is allowed; IAM checks the literal resource, so only a grant covering it counts.
function strictWildcard(response, resource) {
  const explicit = response.results.find((r) => r.analysis.result === 'ExplicitlyDenied')
  if (explicit) return { result: 'ExplicitlyDenied', analysis: explicit.analysis }
  const covering = response.results.find(
    (r) => r.analysis.result === 'Allowed' && covers(r.resourcePattern, resource)
  )
  if (covering) return { result: 'Allowed', analysis: covering.analysis }
  const narrower = response.results.filter((r) => r.analysis.result === 'Allowed')
  const note = narrower.length
    ? `policies allow only narrower resources: ${narrower.map((r) => r.resourcePattern).join(', ')}`
    : 'no identity-based policy allows it'
  return { result: 'ImplicitlyDenied', note, deniedBy: 'identity' }
}

async function answer(request) {
  if (request.identityPolicies) policySets.set(request.policySet, request.identityPolicies)
  const identityPolicies = policySets.get(request.policySet)
  if (!identityPolicies) throw new Error(`unknown policy set ${request.policySet}`)
  const response = await simulate.runSimulation(
    {
      request: {
        principal: request.principal,
        action: request.action,
        resource: { resource: request.resource, accountId: request.accountId },
        contextVariables: request.context ?? {}
      },
      identityPolicies,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(request.resourcePolicy ? { resourcePolicy: request.resourcePolicy } : {})
    },
    { simulationMode: 'Strict' }
  )
  if (response.resultType === 'error') {
    return { result: 'error', explanation: `iam-simulate refused the request: ${JSON.stringify(response.errors)}` }
  }
  let outcome
  let ignored
  if (response.resultType === 'single') {
    outcome = { result: response.overallResult, analysis: response.result.analysis }
    ignored = response.result.ignoredContextKeys ?? []
  } else {
    outcome = strictWildcard(response, request.resource)
    ignored = response.results[0]?.ignoredContextKeys ?? []
  }
  const { lines, deniedBy } = outcome.analysis
    ? explainAnalysis(outcome.analysis, request.context ?? {})
    : { lines: [outcome.note], deniedBy: outcome.deniedBy }
  if (ignored.length) lines.push(`context keys not defined for this action (ignored): ${ignored.join(', ')}`)
  return {
    result: outcome.result,
    explanation: lines.join('\n'),
    ...(outcome.result !== 'Allowed' && deniedBy ? { deniedBy } : {}),
    ignoredContextKeys: ignored
  }
}

out({ ready: true, version })
for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (!line.trim()) continue
  let id = null
  try {
    const request = JSON.parse(line)
    id = request.id
    out({ id, ...(await answer(request)) })
  } catch (error) {
    out({ id, result: 'error', explanation: `simulate.mjs: ${error.stack ?? error}` })
  }
}

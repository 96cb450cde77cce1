// Reads the metric and label names out of a PromQL expression (as written in Grafana dashboards and
// Prometheus rule files), so tests can check them against the names our exporters produce. A small
// lexer, not a parser: it knows strings, numbers, durations, Grafana variables, label matchers,
// range selectors and grouping clauses, which is all a name check needs.

export interface LabelMatcher {
  label: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

export interface PromqlNames {
  metrics: Set<string>;
  /** Label names used in matchers and in by/without/on/ignoring/group_left/group_right clauses. */
  labels: Set<string>;
  matchers: LabelMatcher[];
}

type Token =
  | { kind: 'ident'; text: string }
  | { kind: 'string'; text: string }
  | { kind: 'number' | 'duration' | 'variable'; text: string }
  | { kind: 'punct'; text: string };

const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'start', 'end', ...GROUPING]);
const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio']);

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const rest = () => expr.slice(i);
  while (i < expr.length) {
    const c = expr[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '#') {
      const end = expr.indexOf('\n', i);
      i = end === -1 ? expr.length : end;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      let text = '';
      while (j < expr.length && expr[j] !== c) {
        if (expr[j] === '\\' && c !== '`') j++;
        text += expr[j];
        j++;
      }
      if (j >= expr.length) throw new Error(`unterminated string in: ${expr}`);
      tokens.push({ kind: 'string', text });
      i = j + 1;
      continue;
    }
    let m: RegExpExecArray | null;
    if ((m = /^\$(\{[^}]*\}|\w+)/.exec(rest()))) {
      tokens.push({ kind: 'variable', text: m[0] });
    } else if ((m = /^(?:\d+(?:ms|[smhdwy]))+/.exec(rest()))) {
      tokens.push({ kind: 'duration', text: m[0] });
    } else if ((m = /^(?:0x[0-9a-f]+|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)/i.exec(rest()))) {
      tokens.push({ kind: 'number', text: m[0] });
    } else if ((m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(rest()))) {
      tokens.push({ kind: 'ident', text: m[0] });
    } else if ((m = /^(?:=~|!~|!=|==|>=|<=|[-+*/%^=<>(){}[\],@])/.exec(rest()))) {
      tokens.push({ kind: 'punct', text: m[0] });
    } else {
      throw new Error(`unexpected ${JSON.stringify(c)} at ${i} in: ${expr}`);
    }
    i += m[0].length;
  }
  return tokens;
}

export function promqlNames(expr: string): PromqlNames {
  const tokens = tokenize(expr);
  const out: PromqlNames = { metrics: new Set(), labels: new Set(), matchers: [] };
  const isPunct = (t: Token | undefined, text: string) => t?.kind === 'punct' && t.text === text;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (isPunct(t, '{')) {
      // label matchers: name op "value" [, ...] }
      i++;
      while (i < tokens.length && !isPunct(tokens[i], '}')) {
        const label = tokens[i];
        const op = tokens[i + 1];
        const value = tokens[i + 2];
        if (label.kind !== 'ident' || op?.kind !== 'punct' || !['=', '!=', '=~', '!~'].includes(op.text) || value?.kind !== 'string') {
          throw new Error(`bad label matcher near token ${i} in: ${expr}`);
        }
        out.labels.add(label.text);
        out.matchers.push({ label: label.text, op: op.text as LabelMatcher['op'], value: value.text });
        i += 3;
        if (isPunct(tokens[i], ',')) i++;
      }
      continue;
    }
    if (isPunct(t, '[')) {
      while (i < tokens.length && !isPunct(tokens[i], ']')) i++;
      continue;
    }
    if (t.kind !== 'ident') continue;
    const next = tokens[i + 1];
    if (GROUPING.has(t.text) && isPunct(next, '(')) {
      i += 2;
      while (i < tokens.length && !isPunct(tokens[i], ')')) {
        if (tokens[i].kind === 'ident') out.labels.add(tokens[i].text);
        i++;
      }
      continue;
    }
    if (isPunct(next, '(')) continue; // function or aggregation
    if (AGGREGATIONS.has(t.text) && next?.kind === 'ident' && GROUPING.has(next.text)) continue; // sum by (...) (...)
    if (KEYWORDS.has(t.text.toLowerCase())) continue;
    out.metrics.add(t.text);
  }
  return out;
}

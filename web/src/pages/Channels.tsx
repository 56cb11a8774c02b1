import { useState } from 'react';
import { api, errorMessage, type Channel, type Page } from '../api';
import { dateTime, ms } from '../format';
import { AsyncView, useAsync } from '../components/async';
import { StatusBadge } from '../components/badges';
import { FormDialog } from '../components/dialogs';
import { Field, InputField } from '../components/forms';
import { notify } from '../components/notices';
import { ActionsCell, DeleteButton, DeleteDialog, StatusToggle } from '../components/records';
import { PrimaryButton, SelectField, TextInput } from '../components/controls';
import { ACTIONS, DataTable, PageHead, type Column } from '../components/layout';
import { parseList } from '../validate';

/** The channel types, each with the base URL it takes (an example, shown as the placeholder). */
const TYPES: { value: string; label: string; url?: string }[] = [
  { value: 'openai', label: 'OpenAI-compatible', url: 'https://api.openai.com/v1' },
  { value: 'anthropic', label: 'Anthropic', url: 'https://api.anthropic.com' },
  { value: 'gemini', label: 'Google Gemini', url: 'https://generativelanguage.googleapis.com' },
  { value: 'mock', label: 'Mock (built-in offline provider)' },
];

const COLUMNS: Column[] = [
  'Name',
  'Type',
  'Models',
  { label: 'Priority', num: true },
  { label: 'Weight', num: true },
  'Groups',
  'Status',
  'Connection test',
  ACTIONS,
];

type Dialog = null | { kind: 'create' } | { kind: 'edit' | 'delete'; channel: Channel };
type TestOutcome = {
  ok: boolean;
  latency_ms?: number;
  error?: string /** ISO time of the test. */;
  at: string;
};
type TestResult = TestOutcome | 'running';

// The gateway does not keep connection-test results, so the console keeps each channel's
// last one in this browser (localStorage), with its time, so it survives a reload.
const TEST_STORE = 'moleapi.channel-test.';

function storedTest(id: number): TestOutcome | undefined {
  try {
    const raw = window.localStorage.getItem(TEST_STORE + id);
    if (!raw) return undefined;
    const v = JSON.parse(raw) as Partial<TestOutcome>;
    return typeof v.ok === 'boolean' && typeof v.at === 'string' ? (v as TestOutcome) : undefined;
  } catch {
    return undefined;
  }
}

function storeTest(id: number, t: TestOutcome | null): void {
  try {
    if (t) window.localStorage.setItem(TEST_STORE + id, JSON.stringify(t));
    else window.localStorage.removeItem(TEST_STORE + id);
  } catch {
    /* storage full or blocked: the result still shows until the page is left */
  }
}

export default function ChannelsPage() {
  const channels = useAsync(
    (signal) => api.get<Page<Channel> | { data: Channel[] }>('/api/channels', undefined, signal),
    [],
  );
  const [dialog, setDialog] = useState<Dialog>(null);
  const [tests, setTests] = useState<Record<string, TestResult>>({});
  const close = () => setDialog(null);
  const changed = (msg: string) => {
    close();
    notify(msg);
    channels.reload();
  };

  const runTest = async (c: Channel) => {
    setTests((t) => ({ ...t, [c.id]: 'running' }));
    let outcome: TestOutcome;
    try {
      const r = await api.post<{ ok: boolean; latency_ms: number; error?: string }>(
        `/api/channels/${encodeURIComponent(c.id)}/test`,
      );
      outcome = { ...r, at: new Date().toISOString() };
    } catch (err) {
      outcome = { ok: false, error: errorMessage(err), at: new Date().toISOString() };
    }
    storeTest(c.id, outcome);
    setTests((t) => ({ ...t, [c.id]: outcome }));
  };

  return (
    <div className="page">
      <PageHead
        title="Channels"
        lead="Upstream providers. Higher priority is tried first; within one priority, traffic is shared by weight."
      >
        <PrimaryButton onClick={() => setDialog({ kind: 'create' })}>Add channel</PrimaryButton>
      </PageHead>
      <AsyncView
        state={channels}
        what="channels"
        isEmpty={(d) => d.data.length === 0}
        empty={<p>No channels yet. Add one so keys have models to call — the Mock type works offline.</p>}
      >
        {(d) => (
          <DataTable caption="Channels" columns={COLUMNS}>
            {[...d.data]
              .sort((a, b) => b.priority - a.priority || a.name.localeCompare(b.name))
              .map((c) => {
                const t = tests[c.id] ?? storedTest(c.id);
                return (
                  <tr key={c.id}>
                    <th scope="row">
                      {c.name}
                      {c.base_url ? <div className="muted small">{c.base_url}</div> : null}
                    </th>
                    <td>{c.type}</td>
                    <td className="models-cell">
                      {c.models.join(', ')}
                      {c.model_map && Object.keys(c.model_map).length ? (
                        <div className="muted small">
                          {Object.entries(c.model_map)
                            .map(([a, b]) => `${a} → ${b}`)
                            .join(', ')}
                        </div>
                      ) : null}
                    </td>
                    <td className="num">{c.priority}</td>
                    <td className="num">{c.weight}</td>
                    <td>{c.groups?.length ? c.groups.join(', ') : <span className="muted">all</span>}</td>
                    <td>
                      <StatusBadge status={c.status} />
                      {c.disabled_reason ? <div className="muted small">{c.disabled_reason}</div> : null}
                      {c.cooling_down_until ? (
                        <div className="error-text small">
                          cooling down until{' '}
                          <time dateTime={c.cooling_down_until}>{dateTime(c.cooling_down_until)}</time>
                        </div>
                      ) : null}
                      {c.last_error && c.last_error_at ? (
                        <div className="muted small" title={c.last_error}>
                          {c.consecutive_failures ? `${c.consecutive_failures} failing in a row; ` : ''}
                          last error <time dateTime={c.last_error_at}>{dateTime(c.last_error_at)}</time>:{' '}
                          {c.last_error}
                        </div>
                      ) : null}
                    </td>
                    <td aria-live="polite">
                      {t === 'running' ? (
                        'Testing…'
                      ) : t ? (
                        <>
                          {t.ok ? (
                            <span className="ok-text">OK in {ms(t.latency_ms)}</span>
                          ) : (
                            <span className="error-text">Failed: {t.error ?? 'no answer'}</span>
                          )}
                          <div className="muted small">
                            last tested <time dateTime={t.at}>{dateTime(t.at)}</time>
                          </div>
                        </>
                      ) : (
                        <span className="muted">not tested</span>
                      )}
                    </td>
                    <ActionsCell>
                      <button type="button" onClick={() => void runTest(c)} disabled={t === 'running'}>
                        Test
                      </button>
                      <button type="button" onClick={() => setDialog({ kind: 'edit', channel: c })}>
                        Edit
                      </button>
                      <StatusToggle
                        path={`/api/channels/${encodeURIComponent(c.id)}`}
                        status={c.status}
                        name={c.name}
                        onChanged={channels.reload}
                      />
                      <DeleteButton onClick={() => setDialog({ kind: 'delete', channel: c })} />
                    </ActionsCell>
                  </tr>
                );
              })}
          </DataTable>
        )}
      </AsyncView>

      {dialog?.kind === 'create' || dialog?.kind === 'edit' ? (
        <ChannelForm
          existing={dialog.kind === 'edit' ? dialog.channel : undefined}
          onClose={close}
          onSaved={(c) => changed(`Saved channel ${c.name}.`)}
        />
      ) : null}
      {dialog?.kind === 'delete' ? (
        <DeleteDialog
          title={`Delete channel ${dialog.channel.name}?`}
          path={`/api/channels/${encodeURIComponent(dialog.channel.id)}`}
          onClose={close}
          onDeleted={() => {
            storeTest(dialog.channel.id, null);
            changed(`Deleted channel ${dialog.channel.name}.`);
          }}
        >
          <p>Requests for its models move to the remaining channels, if any serve them.</p>
        </DeleteDialog>
      ) : null}
    </div>
  );
}

function mapToText(m: Record<string, string> | null | undefined): string {
  return m
    ? Object.entries(m)
        .map(([a, b]) => `${a}=${b}`)
        .join('\n')
    : '';
}

function ChannelForm({
  existing,
  onClose,
  onSaved,
}: {
  existing?: Channel;
  onClose: () => void;
  onSaved: (c: Channel) => void;
}) {
  const [name, setName] = useState(existing?.name ?? '');
  const [type, setType] = useState(existing?.type ?? 'openai');
  const [baseUrl, setBaseUrl] = useState(existing?.base_url ?? '');
  const [apiKey, setApiKey] = useState('');
  const [models, setModels] = useState((existing?.models ?? []).join(', '));
  const [modelMap, setModelMap] = useState(mapToText(existing?.model_map));
  const [priority, setPriority] = useState(String(existing?.priority ?? 0));
  const [weight, setWeight] = useState(String(existing?.weight ?? 1));
  const [groups, setGroups] = useState((existing?.groups ?? []).join(', '));
  const [responses, setResponses] = useState(existing?.responses ?? true);
  const typeInfo = TYPES.find((t) => t.value === type);
  const needsUrl = Boolean(typeInfo?.url);

  const submit = () => {
    const map: Record<string, string> = {};
    for (const line of modelMap
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)) {
      const m = /^([^=\s]+)\s*(?:=|->|→)\s*(\S+)$/.exec(line);
      if (!m) return `Model map line “${line}” should look like alias=upstream-model.`;
      map[m[1] as string] = m[2] as string;
    }
    const modelList = parseList(models);
    if (!modelList.length) return 'List at least one model this channel serves.';
    const p = Number(priority);
    const w = Number(weight);
    if (!Number.isInteger(p)) return 'Priority must be a whole number.';
    if (!Number.isInteger(w) || w < 0) return 'Weight must be a whole number, 0 or more.';
    if (needsUrl && !/^https?:\/\//.test(baseUrl.trim()))
      return 'Base URL must start with http:// or https://.';
    const body: Record<string, unknown> = {
      name: name.trim(),
      type,
      models: modelList,
      model_map: Object.keys(map).length ? map : null,
      priority: p,
      weight: w,
      groups: parseList(groups).length ? parseList(groups) : null,
    };
    if (type === 'openai') body.responses = responses;
    if (baseUrl.trim()) body.base_url = baseUrl.trim();
    if (apiKey) body.api_key = apiKey;
    else if (!existing && needsUrl) body.api_key = ''; // some local servers need none
    if (!existing) for (const k of Object.keys(body)) if (body[k] === null) delete body[k];
    return (
      existing
        ? api.patch<Channel>(`/api/channels/${encodeURIComponent(existing.id)}`, body)
        : api.post<Channel>('/api/channels', body)
    ).then(onSaved);
  };

  return (
    <FormDialog
      title={existing ? `Edit channel ${existing.name}` : 'Add channel'}
      onClose={onClose}
      onSubmit={submit}
      submitLabel={existing ? 'Save' : 'Add channel'}
      grid
      className="form-dialog"
    >
      <TextInput label="Name" value={name} onChange={setName} required data-autofocus />
      <SelectField
        label="Type"
        value={type}
        options={TYPES.some((t) => t.value === type) ? TYPES : [...TYPES, { value: type, label: type }]}
        onChange={setType}
      />
      <TextInput
        label="Base URL"
        className="span2"
        type="url"
        value={baseUrl}
        onChange={setBaseUrl}
        placeholder={typeInfo?.url ?? 'not needed for this type'}
        required={needsUrl}
      />
      {type === 'openai' ? (
        <label className="radio span2">
          <input type="checkbox" checked={responses} onChange={(e) => setResponses(e.target.checked)} />
          Serves the Responses API (/v1/responses); when off, Responses requests are translated to chat
        </label>
      ) : null}
      <InputField
        label="Upstream API key"
        hint={
          existing
            ? 'Stored encrypted and never shown again. Leave empty to keep the current one.'
            : 'Stored encrypted and never shown again.'
        }
        className="span2"
        type="password"
        value={apiKey}
        onChange={setApiKey}
        autoComplete="off"
      />
      <Field
        label="Models"
        hint="Comma- or line-separated model names clients may request."
        className="span2"
      >
        <textarea
          value={models}
          onChange={(e) => setModels(e.target.value)}
          rows={2}
          placeholder="gpt-4o-mini, gpt-4o"
          required
        />
      </Field>
      <Field label="Model map" hint="Optional, one per line: requested-name=upstream-name." className="span2">
        <textarea
          value={modelMap}
          onChange={(e) => setModelMap(e.target.value)}
          rows={2}
          placeholder="gpt-4o-mini=gpt-4o-mini-2024-07-18"
        />
      </Field>
      <TextInput label="Priority" type="number" step={1} value={priority} onChange={setPriority} />
      <TextInput label="Weight" type="number" min={0} step={1} value={weight} onChange={setWeight} />
      <TextInput
        label="Groups"
        className="span2"
        value={groups}
        onChange={setGroups}
        placeholder="default, vip — empty for all groups"
      />
      {existing ? <p className="muted span2 small">Last changed {dateTime(existing.updated_at)}.</p> : null}
    </FormDialog>
  );
}

import { useState } from 'react';
import { api, type Group, type Price } from '../api';
import { usdExact } from '../format';
import { AsyncView, useAsync } from '../components/async';
import { PrimaryButton, TextInput } from '../components/controls';
import { FormDialog } from '../components/dialogs';
import { BudgetFields, LimitFields, limitValuesOf } from '../components/limitFields';
import { budgetValuesOf, parseBudget } from '../budget';
import { notify } from '../components/notices';
import { ActionsCell, DeleteButton, DeleteDialog } from '../components/records';
import { ACTIONS, type Column, DataTable, PageHead, Section } from '../components/layout';
import { parseLimit, parseList, parseUsd, usdText } from '../validate';

/** Model names may hold "/" (org/model): the server takes the rest of the path as the name. */
const modelPath = (m: string) => m.split('/').map(encodeURIComponent).join('/');

const PRICE_COLUMNS: Column[] = [
  'Model',
  { label: 'Input / 1M', num: true },
  { label: 'Cached input / 1M', num: true },
  { label: 'Cache write / 1M', num: true },
  { label: 'Cache write 1h / 1M', num: true },
  { label: 'Output / 1M', num: true },
  { label: 'Web search / 1k', num: true },
  { label: 'Priority', num: true },
  ACTIONS,
];

/** A group's limits, models and key lifetime in a few words. */
function groupPolicy(g: Group): string {
  const parts = [
    g.rpm ? `${g.rpm} rpm` : null,
    g.tpm ? `${g.tpm.toLocaleString()} tpm` : null,
    g.max_concurrency ? `${g.max_concurrency} at once` : null,
    g.models ? `models: ${g.models.join(', ')}` : null,
    g.max_key_lifetime_days ? `keys live ≤ ${g.max_key_lifetime_days} days` : null,
  ].filter(Boolean);
  return parts.length ? parts.join(' · ') : 'none';
}
const GROUP_COLUMNS: Column[] = [
  'Group',
  { label: 'Multiplier', num: true },
  'Limits and policy',
  'Key budget',
  ACTIONS,
];
const PER = { daily: 'day', weekly: 'week', monthly: 'month' } as const;

export default function PricingPage() {
  const prices = useAsync(
    (signal) => api.get<{ data: Price[] }>('/api/prices', undefined, signal).then((r) => r.data),
    [],
  );
  const groups = useAsync(
    (signal) => api.get<{ data: Group[] }>('/api/groups', undefined, signal).then((r) => r.data),
    [],
  );
  const offered = useAsync(
    (signal) =>
      api.get<{ data: { id: string; priced: boolean }[] }>('/api/models', undefined, signal).then(
        (r) => r.data,
        () => [],
      ),
    [prices.data],
  );
  const [editing, setEditing] = useState<Price | 'new' | null>(null);
  const [deleting, setDeleting] = useState<Price | null>(null);
  const [editingGroup, setEditingGroup] = useState<Group | 'new' | null>(null);
  const unpriced = (offered.data ?? []).filter((m) => !m.priced);

  return (
    <div className="page">
      <PageHead
        title="Pricing"
        lead="Prices are US dollars per 1 million tokens, and per 1,000 for the searches a provider’s own search tool runs. A call costs its tokens and searches at these prices times the key’s group multiplier; an answer at OpenAI’s priority processing costs its tokens the priority multiplier more, and a model without one refuses priority."
      />

      <Section
        title="Model prices"
        actions={<PrimaryButton onClick={() => setEditing('new')}>Add price</PrimaryButton>}
      >
        {unpriced.length ? (
          <p className="notice warn">
            Served but not priced yet: {unpriced.map((m) => m.id).join(', ')}. Calls to unpriced models are
            refused.
          </p>
        ) : null}
        <AsyncView state={prices} what="prices" isEmpty={(d) => d.length === 0} empty={<p>No prices yet.</p>}>
          {(d) => (
            <DataTable
              caption="Model prices, USD per 1M tokens (web searches per 1,000)"
              columns={PRICE_COLUMNS}
            >
              {[...d]
                .sort((a, b) => a.model.localeCompare(b.model))
                .map((p) => (
                  <tr key={p.model}>
                    <th scope="row">{p.model}</th>
                    <td className="num">{usdExact(p.input)}</td>
                    <td className="num">
                      {p.cached_input == null ? (
                        <span className="muted">same as input</span>
                      ) : (
                        usdExact(p.cached_input)
                      )}
                    </td>
                    <td className="num">
                      {p.cache_write == null ? (
                        <span className="muted">same as input</span>
                      ) : (
                        usdExact(p.cache_write)
                      )}
                    </td>
                    <td className="num">
                      {p.cache_write_1h == null ? (
                        <span className="muted">2× input</span>
                      ) : (
                        usdExact(p.cache_write_1h)
                      )}
                    </td>
                    <td className="num">{usdExact(p.output)}</td>
                    <td className="num">
                      {p.web_search_per_1k == null ? (
                        <span className="muted">$10 (unset)</span>
                      ) : (
                        usdExact(p.web_search_per_1k)
                      )}
                    </td>
                    <td className="num">
                      {p.priority_multiplier == null ? (
                        <span className="muted">refused</span>
                      ) : (
                        `×${p.priority_multiplier}`
                      )}
                    </td>
                    <ActionsCell>
                      <button type="button" onClick={() => setEditing(p)}>
                        Edit
                      </button>
                      <DeleteButton onClick={() => setDeleting(p)} />
                    </ActionsCell>
                  </tr>
                ))}
            </DataTable>
          )}
        </AsyncView>
      </Section>

      <Section
        title="Group multipliers"
        actions={
          <button type="button" onClick={() => setEditingGroup('new')}>
            Add group
          </button>
        }
      >
        <AsyncView state={groups} what="groups" isEmpty={(d) => d.length === 0}>
          {(d) => (
            <DataTable caption="Groups and their price multipliers" columns={GROUP_COLUMNS}>
              {d.map((g) => (
                <tr key={g.name}>
                  <th scope="row">{g.name}</th>
                  <td className="num">×{g.multiplier}</td>
                  <td>{groupPolicy(g)}</td>
                  <td>
                    {g.budget ? `${usdExact(g.budget.amount)} per ${PER[g.budget.period]} per key` : '—'}
                  </td>
                  <td>
                    <button type="button" onClick={() => setEditingGroup(g)}>
                      Edit
                    </button>
                  </td>
                </tr>
              ))}
            </DataTable>
          )}
        </AsyncView>
      </Section>

      {editing ? (
        <PriceForm
          existing={editing === 'new' ? undefined : editing}
          suggestions={unpriced.map((m) => m.id)}
          onClose={() => setEditing(null)}
          onSaved={(p) => {
            setEditing(null);
            notify(`Saved the price of ${p.model}.`);
            prices.reload();
          }}
        />
      ) : null}
      {deleting ? (
        <DeleteDialog
          title={`Delete the price of ${deleting.model}?`}
          path={`/api/prices/${modelPath(deleting.model)}`}
          onClose={() => setDeleting(null)}
          onDeleted={() => {
            setDeleting(null);
            prices.reload();
          }}
        >
          <p>Calls to {deleting.model} are refused until it has a price again.</p>
        </DeleteDialog>
      ) : null}
      {editingGroup ? (
        <GroupForm
          existing={editingGroup === 'new' ? undefined : editingGroup}
          onClose={() => setEditingGroup(null)}
          onSaved={() => {
            setEditingGroup(null);
            groups.reload();
          }}
        />
      ) : null}
    </div>
  );
}

type PriceKey = 'input' | 'output' | 'cached_input' | 'cache_write' | 'cache_write_1h' | 'web_search_per_1k';

/**
 * The price fields in the form's order; a required one has an example amount for its error,
 * an optional one says what an empty field bills at.
 */
const PRICE_FIELDS: { key: PriceKey; label: string; example?: string; unset?: string; unit?: string }[] = [
  { key: 'input', label: 'Input', example: '0.15' },
  { key: 'output', label: 'Output', example: '0.60' },
  { key: 'cached_input', label: 'Cached input', unset: 'same as input' },
  { key: 'cache_write', label: 'Cache write', unset: 'same as input' },
  { key: 'cache_write_1h', label: 'Cache write, 1 hour', unset: '2× input' },
  // Searches a provider's own search tool runs (Anthropic, OpenAI Responses, Gemini grounding).
  { key: 'web_search_per_1k', label: 'Web search', unset: '10', unit: 'per 1,000 searches' },
];

/** A number as a field's text; none is the empty field. */
const text = (v: number | null | undefined) => (v == null ? '' : String(v));

/** A price's fields as text ('' where it has none). */
function priceTexts(p?: Price): Record<PriceKey, string> {
  return {
    input: usdText(p?.input),
    output: usdText(p?.output),
    cached_input: usdText(p?.cached_input),
    cache_write: usdText(p?.cache_write),
    cache_write_1h: usdText(p?.cache_write_1h),
    web_search_per_1k: usdText(p?.web_search_per_1k),
  };
}

function PriceForm({
  existing,
  suggestions,
  onClose,
  onSaved,
}: {
  existing?: Price;
  suggestions: string[];
  onClose: () => void;
  onSaved: (p: Price) => void;
}) {
  const [model, setModel] = useState(existing?.model ?? suggestions[0] ?? '');
  const [prices, setPrices] = useState(() => priceTexts(existing));
  const [priority, setPriority] = useState(text(existing?.priority_multiplier));
  const submit = () => {
    if (!model.trim()) return 'Enter the model name.';
    const body: Partial<Record<PriceKey | 'priority_multiplier', number>> = {};
    for (const f of PRICE_FIELDS) {
      const p = parseUsd(prices[f.key]);
      if (f.example && (p.error || p.value === null))
        return `${f.label} price: enter US dollars ${f.unit ?? 'per 1M tokens'}, e.g. ${f.example}.`;
      if (p.error) return `${f.label} price: ${p.error}`;
      if (p.value !== null) body[f.key] = p.value;
    }
    if (priority.trim()) {
      const m = Number(priority);
      if (!(m >= 1 && m <= 100) || !/^\d+(\.\d{1,6})?$/.test(priority.trim()))
        return 'Priority multiplier: a number from 1 to 100 with at most 6 decimals, e.g. 2, or empty to refuse priority.';
      body.priority_multiplier = m;
    }
    return api.put<Price>(`/api/prices/${modelPath(model.trim())}`, body).then(onSaved);
  };
  return (
    <FormDialog
      title={existing ? `Price of ${existing.model}` : 'Add price'}
      onClose={onClose}
      onSubmit={submit}
      submitLabel="Save price"
      grid
    >
      <label className="span2">
        Model
        <input
          value={model}
          onChange={(e) => setModel(e.target.value)}
          readOnly={Boolean(existing)}
          list="unpriced-models"
          required
          data-autofocus={!existing || undefined}
        />
        <datalist id="unpriced-models">
          {suggestions.map((s) => (
            <option key={s} value={s} />
          ))}
        </datalist>
      </label>
      {PRICE_FIELDS.map((f, i) => (
        <DecimalInput
          key={f.key}
          label={`${f.label} (USD ${f.unit ?? 'per 1M tokens'})`}
          value={prices[f.key]}
          onChange={(v) => setPrices((cur) => ({ ...cur, [f.key]: v }))}
          required={Boolean(f.example)}
          placeholder={f.unset}
          autoFocus={i === 0 && Boolean(existing)}
        />
      ))}
      {/* OpenAI bills priority processing (`service_tier: "priority"`) above its standard price. */}
      <DecimalInput
        label="Priority multiplier (service_tier priority)"
        value={priority}
        onChange={setPriority}
        placeholder="refused"
      />
    </FormDialog>
  );
}

function GroupForm({
  existing,
  onClose,
  onSaved,
}: {
  existing?: Group;
  onClose: () => void;
  onSaved: () => void;
}) {
  const [name, setName] = useState(existing?.name ?? '');
  const [multiplier, setMultiplier] = useState(existing ? String(existing.multiplier) : '1');
  const [limits, setLimits] = useState(() => limitValuesOf(existing));
  const { rpm, tpm, concurrency } = limits;
  const [models, setModels] = useState((existing?.models ?? []).join(', '));
  const [lifetime, setLifetime] = useState(text(existing?.max_key_lifetime_days));
  const [budget, setBudget] = useState(() => budgetValuesOf(existing));
  const submit = () => {
    const m = Number(multiplier);
    if (!name.trim()) return 'Enter a group name.';
    if (!(m >= 0) || !Number.isFinite(m)) return 'The multiplier is a number such as 1, 0.8 or 1.5.';
    const limits = [
      parseLimit(rpm, 1_000_000, 'requests per minute'),
      parseLimit(tpm, 1_000_000_000, 'tokens per minute'),
      parseLimit(concurrency, 10_000, 'requests at once'),
      parseLimit(lifetime, 3650, 'days'),
    ];
    const bad = limits.find((l) => l.error);
    if (bad?.error) return bad.error;
    const list = parseList(models);
    const badModel = list.find((p) => !/^[^\s*]+\*?$/.test(p) && p !== '*');
    if (badModel) return `“${badModel}”: a model is a name, optionally ending in *.`;
    const b = parseBudget(budget);
    if (b.error) return `Key budget: ${b.error}`;
    return api
      .put(`/api/groups/${encodeURIComponent(name.trim())}`, {
        multiplier: m,
        rpm: limits[0]!.value,
        tpm: limits[1]!.value,
        max_concurrency: limits[2]!.value,
        models: list.length ? list : null,
        max_key_lifetime_days: limits[3]!.value,
        budget: b.value,
      })
      .then(onSaved);
  };
  return (
    <FormDialog
      title={existing ? `Group ${existing.name}` : 'Add group'}
      onClose={onClose}
      onSubmit={submit}
      submitLabel="Save group"
      grid
    >
      <TextInput
        label="Group name"
        value={name}
        onChange={setName}
        readOnly={Boolean(existing)}
        required
        data-autofocus={!existing || undefined}
      />
      <DecimalInput
        label="Multiplier"
        value={multiplier}
        onChange={setMultiplier}
        required
        autoFocus={Boolean(existing)}
      />
      <LimitFields
        values={limits}
        onChange={(field, value) => setLimits((l) => ({ ...l, [field]: value }))}
        placeholder="No limit"
      />
      <TextInput
        label="Max key lifetime (days)"
        inputMode="numeric"
        value={lifetime}
        onChange={setLifetime}
        placeholder="No limit"
      />
      <TextInput
        label="Models the group may use"
        className="span2"
        value={models}
        onChange={setModels}
        placeholder="Every model (or e.g. gpt-4o*, mole-mini)"
      />
      <p className="hint span2">
        Limits are each key's and each account's default and ceiling in this group; keys and users cannot be
        set above them.
      </p>
      <BudgetFields
        label="Key budget (USD)"
        hint="The default spend ceiling for each key of the group; a key’s own budget may not be above it."
        values={budget}
        onChange={(field, value) => setBudget((b) => ({ ...b, [field]: value }))}
      />
    </FormDialog>
  );
}

/** A labelled decimal field (a price, a multiplier), typed as text. */
function DecimalInput({
  label,
  value,
  onChange,
  required,
  placeholder,
  autoFocus,
}: {
  label: string;
  value: string;
  onChange: (value: string) => void;
  required?: boolean;
  placeholder?: string;
  /** Marks the field the dialog focuses first. */
  autoFocus?: boolean;
}) {
  return (
    <TextInput
      label={label}
      inputMode="decimal"
      value={value}
      onChange={onChange}
      required={required}
      placeholder={placeholder}
      data-autofocus={autoFocus || undefined}
    />
  );
}

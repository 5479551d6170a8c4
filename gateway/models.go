package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/llmgate/llmgate/tokenizer"
)

// model is one name clients may send, and how it is served.
type model struct {
	name     string
	upstream string // the name sent upstream
	pool     []*backend
	counter  *tokenizer.Counter // for estimates when the backend reports no usage
	price    Price
}

// modelTable maps client model names to models. It is immutable once built; the gateway swaps
// a whole new table when discovery finds a change.
type modelTable struct {
	byName map[string]*model
	names  []string // sorted, for /v1/models
	// partial is true while discovery has not yet read some backend's list, so a model
	// missing from the table may still exist.
	partial bool
}

func newModelTable(models []*model) *modelTable {
	t := &modelTable{byName: make(map[string]*model, len(models))}
	for _, m := range models {
		t.byName[m.name] = m
		t.names = append(t.names, m.name)
	}
	slices.Sort(t.names)
	return t
}

// staticModels builds the table of configured models.
func staticModels(cfg []ModelConfig, backends map[string]*backend) (*modelTable, error) {
	var ms []*model
	for _, mc := range cfg {
		c, err := tokenizer.New(mc.Tokenizer)
		if err != nil {
			return nil, err
		}
		m := &model{name: mc.Name, upstream: mc.UpstreamModel, counter: c, price: mc.Price}
		if m.upstream == "" {
			m.upstream = mc.Name
		}
		for _, name := range mc.Backends {
			m.pool = append(m.pool, backends[name])
		}
		ms = append(ms, m)
	}
	return newModelTable(ms), nil
}

// discoverer lists every backend's /v1/models on an interval and serves each model it finds
// from the backends that list it. A backend that does not answer keeps its last list, so a
// short outage does not make its models vanish.
type discoverer struct {
	backends []*backend
	client   *http.Client
	interval time.Duration
	retry    time.Duration // the sooner interval while some backend's list is unknown
	counter  *tokenizer.Counter
	log      *slog.Logger
	publish  func(*modelTable)

	last map[*backend][]string // owned by the run goroutine
}

// run re-lists the backends until ctx ends: every interval, or every retry while some
// backend's list is still unknown. Run has already called refresh once.
func (d *discoverer) run(ctx context.Context) {
	t := time.NewTimer(d.next())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.refresh(ctx)
		t.Reset(d.next())
	}
}

func (d *discoverer) next() time.Duration {
	if len(d.last) < len(d.backends) {
		return min(d.retry, d.interval)
	}
	return d.interval
}

// refresh lists every backend once and publishes the resulting table.
func (d *discoverer) refresh(ctx context.Context) {
	if d.last == nil {
		d.last = map[*backend][]string{}
	}
	for _, b := range d.backends {
		ids, err := listModels(ctx, d.client, b)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("list backend models", slog.String("backend", b.name), slog.Any("error", err))
			}
			continue
		}
		d.last[b] = ids
	}
	byName := map[string]*model{}
	var ms []*model
	for _, b := range d.backends {
		for _, id := range d.last[b] {
			m := byName[id]
			if m == nil {
				m = &model{name: id, upstream: id, counter: d.counter}
				byName[id] = m
				ms = append(ms, m)
			}
			m.pool = append(m.pool, b)
		}
	}
	t := newModelTable(ms)
	t.partial = len(d.last) < len(d.backends)
	d.publish(t)
}

// listModels returns the model IDs that b lists on /v1/models.
func listModels(ctx context.Context, client *http.Client, b *backend) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url("/v1/models"), nil)
	if err != nil {
		return nil, fmt.Errorf("build models request: %w", err)
	}
	if b.authz != "" {
		req.Header.Set("Authorization", b.authz)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get models: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get models: status %d", resp.StatusCode)
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&list); err != nil {
		return nil, fmt.Errorf("decode models: %w", err)
	}
	ids := make([]string, 0, len(list.Data))
	for _, m := range list.Data {
		if m.ID != "" {
			ids = append(ids, m.ID)
		}
	}
	return ids, nil
}

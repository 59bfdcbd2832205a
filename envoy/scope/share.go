package scope

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Shared is where the nodes of a mesh share their tables' summaries (Redis,
// wired by the node). Writes are bounded by the Table: each token's
// summary at most once per ShareInterval, at most MaxShare per interval.
type Shared interface {
	// Put stores node's summaries; each expires with its token.
	Put(ctx context.Context, node string, items []SharedItem) error
	// Find returns the summaries, of every node, of the tokens under index
	// ("" for all), the latest expiring first, at most max tokens.
	Find(ctx context.Context, index string, max int) ([][]byte, error)
}

// SharedItem is one token's summary as a node shares it.
type SharedItem struct {
	// Key names the token in the store: a hash of its issuer and id.
	Key string
	// Data is the Entry, JSON-encoded.
	Data []byte
	// Indexes are the index keys it is found under ("" is every token).
	Indexes []string
	// Expiry is when the token, and so its summary, expires.
	Expiry time.Time
}

// StoreKey is the Shared key of the token of issuer and id: fixed length
// whatever the token id.
func StoreKey(issuer, tokenID string) string {
	sum := sha256.Sum256([]byte(key(issuer, tokenID)))
	return hex.EncodeToString(sum[:16])
}

// changed returns the summaries changed since they were last shared, at
// most MaxShare (the rest wait for the next interval), and marks them
// shared.
func (t *Table) changed() []SharedItem {
	now := t.now()
	t.mu.Lock()
	var es []Entry
	for _, r := range t.lru.Values() {
		if len(es) >= t.cfg.MaxShare {
			break
		}
		if r.dirty && now.Before(r.Expiry) {
			r.dirty = false
			e := r.clone()
			e.Nodes = []string{t.node}
			es = append(es, e)
		}
	}
	t.mu.Unlock()
	items := make([]SharedItem, 0, len(es))
	for i := range es {
		data, err := json.Marshal(&es[i])
		if err != nil {
			continue // an Entry always encodes
		}
		items = append(items, SharedItem{Key: StoreKey(es[i].Issuer, es[i].TokenID), Data: data, Indexes: es[i].indexes(), Expiry: es[i].Expiry})
	}
	return items
}

// share writes items, logging a failure (they are written again when
// their tokens are next seen).
func (t *Table) share(ctx context.Context, items []SharedItem) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ShareInterval)
	defer cancel()
	if err := t.shared.Put(ctx, t.node, items); err != nil {
		t.log.Warn("sharing the token scope failed; this node's recent tokens are missing from mesh answers until they are seen again", "tokens", len(items), "err", err)
	}
}

// Answer is the answer of GET /v1/tokens.
type Answer struct {
	Tokens []Entry `json:"tokens"`
	// Truncated is set when more tokens matched than the limit.
	Truncated bool `json:"truncated"`
	// Mesh is set when the answer covers every node sharing the store;
	// otherwise it covers this node only.
	Mesh bool `json:"mesh"`
	// Warnings say what the answer may miss (a store that did not answer).
	Warnings []string `json:"warnings,omitempty"`
}

// Answer returns the live tokens q selects: this node's, merged with every
// node's shared summaries when the table shares them. A store that fails
// leaves this node's answer, with a warning.
func (t *Table) Answer(ctx context.Context, q Query) Answer {
	t.Flush()
	local, truncated := t.Query(q)
	ans := Answer{Tokens: local, Truncated: truncated}
	if t.shared == nil {
		ans.Tokens = nonNil(ans.Tokens)
		return ans
	}
	now := t.now()
	limit := q.limit()
	blobs, err := t.shared.Find(ctx, q.Index(), MaxLimit)
	if err != nil {
		ans.Warnings = append(ans.Warnings, fmt.Sprintf("the shared scope did not answer (%v): this node's tokens only", err))
		ans.Tokens = nonNil(ans.Tokens)
		return ans
	}
	ans.Mesh = true
	if len(blobs) >= MaxLimit {
		ans.Truncated = true
	}
	byKey := map[string]int{}
	var merged []Entry
	add := func(e *Entry) {
		k := e.Key()
		if i, ok := byKey[k]; ok {
			merged[i].merge(e)
			return
		}
		byKey[k] = len(merged)
		c := e.clone()
		merged = append(merged, c)
	}
	var bad int
	for _, b := range blobs {
		var e Entry
		if err := json.Unmarshal(b, &e); err != nil || e.TokenID == "" {
			bad++
			continue
		}
		if containsNode(e.Nodes, t.node) {
			continue // this node's own live view replaces what it shared
		}
		if q.Match(&e, now) {
			add(&e)
		}
	}
	for i := range local {
		add(&local[i])
	}
	if bad > 0 {
		ans.Warnings = append(ans.Warnings, fmt.Sprintf("%d shared summaries did not decode and were skipped", bad))
	}
	for i := range merged {
		merged[i].DistinctAddrs = merged[i].Addrs.Estimate()
	}
	sortEntries(merged)
	if len(merged) > limit {
		merged, ans.Truncated = merged[:limit], true
	}
	ans.Tokens = nonNil(merged)
	return ans
}

func containsNode(nodes []string, node string) bool {
	for _, n := range nodes {
		if n == node {
			return true
		}
	}
	return false
}

func nonNil(es []Entry) []Entry {
	if es == nil {
		return []Entry{}
	}
	return es
}

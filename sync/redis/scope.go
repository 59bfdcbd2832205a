package redis

import (
	"context"
	"net/url"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// ScopeStore is where the nodes of a mesh share the summaries of the
// tokens they see (the incident scope, GET /v1/tokens). Keys, beside the
// source's:
//
//	scope:tok:<key>     hash: node name -> that node's summary (JSON),
//	                    expiring (PXAT) with the token
//	scope:idx:<index>   sorted set of token keys scored by their expiry (ms),
//	                    expiring with its longest-lived token; <index> is
//	                    "" (every token), issuer:, subject:, session: or
//	                    kid: and the value, query-escaped; at most
//	                    MaxScopeIndex members (the soonest expiring go)
//
// Writes are bounded by the nodes (each token at most once per interval);
// everything expires with the tokens, so nothing needs pruning.
type ScopeStore struct{ s *Source }

// MaxScopeIndex bounds the members of one scope index.
const MaxScopeIndex = 100_000

// Scope returns the scope store beside the source's records.
func (s *Source) Scope() *ScopeStore { return &ScopeStore{s} }

// ScopeSummary is one token's summary as a node shares it.
type ScopeSummary struct {
	Key     string
	Data    []byte
	Indexes []string
	Expiry  time.Time
}

func (st *ScopeStore) tok(key string) string { return st.s.k.prefix + "scope:tok:" + key }
func (st *ScopeStore) idx(index string) string {
	return st.s.k.prefix + "scope:idx:" + url.QueryEscape(index)
}

// Put stores node's summaries in one pipeline.
func (st *ScopeStore) Put(ctx context.Context, node string, items []ScopeSummary) error {
	if len(items) == 0 {
		return nil
	}
	ctx, cancel := st.s.opContext(ctx)
	defer cancel()
	now := st.s.now().UnixMilli()
	touched := map[string]int64{}
	_, err := st.s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, it := range items {
			exp := it.Expiry.UnixMilli()
			if exp <= now {
				continue
			}
			k := st.tok(it.Key)
			p.HSet(ctx, k, node, it.Data)
			p.PExpireAt(ctx, k, it.Expiry)
			for _, ix := range it.Indexes {
				ik := st.idx(ix)
				p.ZAdd(ctx, ik, goredis.Z{Score: float64(exp), Member: it.Key})
				if exp > touched[ik] {
					touched[ik] = exp
				}
			}
		}
		for ik, exp := range touched {
			p.ZRemRangeByScore(ctx, ik, "-inf", strconv.FormatInt(now, 10))
			p.ZRemRangeByRank(ctx, ik, 0, -MaxScopeIndex-1)
			// NX then GT: the index expires with its longest-lived token.
			p.Do(ctx, "PEXPIREAT", ik, exp, "NX")
			p.Do(ctx, "PEXPIREAT", ik, exp, "GT")
		}
		return nil
	})
	if err != nil {
		return st.s.wrap("share token scope", err)
	}
	return nil
}

// Find returns every node's summaries of the live tokens under index, the
// latest expiring first, at most max tokens.
func (st *ScopeStore) Find(ctx context.Context, index string, max int) ([][]byte, error) {
	ctx, cancel := st.s.opContext(ctx)
	defer cancel()
	now := st.s.now().UnixMilli()
	keys, err := st.s.rdb.ZRangeArgs(ctx, goredis.ZRangeArgs{
		Key: st.idx(index), Start: "+inf", Stop: "(" + strconv.FormatInt(now, 10), ByScore: true, Rev: true, Count: int64(max),
	}).Result()
	if err != nil {
		return nil, st.s.wrap("read token scope index", err)
	}
	cmds := make([]*goredis.MapStringStringCmd, len(keys))
	_, err = st.s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.HGetAll(ctx, st.tok(k))
		}
		return nil
	})
	if err != nil {
		return nil, st.s.wrap("read token scope", err)
	}
	var out [][]byte
	for _, c := range cmds {
		for _, data := range c.Val() {
			out = append(out, []byte(data))
		}
	}
	return out, nil
}

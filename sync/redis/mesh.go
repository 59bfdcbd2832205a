package redis

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/sync/source"
)

var _ source.Reporter = (*Source)(nil)

// Report stores st as node:<id>, expiring at st.Expires, and indexes it in
// the nodes sorted set (scored by expiry), dropping lapsed members, in one
// round trip. Each node writes about once per heartbeat, plus once per
// move of its position (the node bounds that rate).
func (s *Source) Report(ctx context.Context, st source.NodeStatus) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("report node %s: encode: %w", st.ID, err)
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	exp := st.Expires.UnixMilli()
	cmds, _ := s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Set(ctx, s.k.node(st.ID), data, 0)
		p.PExpireAt(ctx, s.k.node(st.ID), st.Expires)
		p.ZAdd(ctx, s.k.nodes(), goredis.Z{Score: float64(exp), Member: st.ID})
		p.ZRemRangeByScore(ctx, s.k.nodes(), "-inf", strconv.FormatInt(s.now().UnixMilli(), 10))
		return nil
	})
	if err := pipeErr(cmds); err != nil {
		return s.wrap("report node "+st.ID, err)
	}
	return nil
}

// Nodes returns the reports not expired, in ID order: the IDs of the nodes
// set scored after now, then their reports (one MGET).
func (s *Source) Nodes(ctx context.Context) ([]source.NodeStatus, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	ids, err := s.rdb.ZRangeArgs(ctx, goredis.ZRangeArgs{
		Key: s.k.nodes(), Start: "(" + strconv.FormatInt(s.now().UnixMilli(), 10), Stop: "+inf", ByScore: true,
	}).Result()
	if err != nil {
		return nil, s.wrap("mesh nodes", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.k.node(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, s.wrap("mesh nodes", err)
	}
	out := make([]source.NodeStatus, 0, len(vals))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // lapsed since
		}
		var st source.NodeStatus
		if err := json.Unmarshal([]byte(str), &st); err != nil {
			return nil, s.wrap("mesh nodes", fmt.Errorf("report of node %s does not decode: %w", ids[i], err))
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b source.NodeStatus) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

package redis

import (
	"context"
	"errors"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Sighting is what one node adds to a mesh-wide set: members (source
// addresses a token was seen from) under Key, kept TTL after the last
// addition.
type Sighting struct {
	Key     string
	Members []string
	TTL     time.Duration
}

// AddSightings adds each sighting to its set, a HyperLogLog of its own (12
// KiB at most, whatever the members: about 0.8% error on the count), and
// returns how many distinct members each set now holds across every node
// that added to it. One round trip for the batch: PFADD, PEXPIRE and
// PFCOUNT per sighting, pipelined.
func (s *Source) AddSightings(ctx context.Context, batch []Sighting) ([]int64, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	counts := make([]*goredis.IntCmd, len(batch))
	_, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, sg := range batch {
			k := s.k.sighting(sg.Key)
			members := make([]any, len(sg.Members))
			for j, m := range sg.Members {
				members[j] = m
			}
			p.PFAdd(ctx, k, members...)
			p.PExpire(ctx, k, sg.TTL)
			counts[i] = p.PFCount(ctx, k)
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap("add sightings", err)
	}
	out := make([]int64, len(batch))
	for i, c := range counts {
		out[i] = c.Val()
	}
	return out, nil
}

// Claim takes name for ttl unless another node holds it: so that a
// mesh-wide finding is acted on by one node only.
func (s *Source) Claim(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	err := s.rdb.SetArgs(ctx, s.k.claim(name), "1", goredis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	switch {
	case errors.Is(err, goredis.Nil):
		return false, nil
	case err != nil:
		return false, s.wrap("claim", err)
	}
	return true, nil
}

func (k keys) sighting(key string) string { return k.prefix + "seen:" + key }
func (k keys) claim(name string) string   { return k.prefix + "claim:" + name }

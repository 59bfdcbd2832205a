package redis

import (
	"bytes"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/authz"
)

// legacyPutScript is the Put script of the version before batch feed
// entries: eight commands a record, one feed entry (field r, the record's
// JSON) per record, the feed trimmed by MAXLEN ~. Tests write with it to
// check that this version reads what that one wrote, and BenchmarkBulkPut
// to compare the two in one run.
var legacyPutScript = goredis.NewScript(`
local first = redis.call('GET', KEYS[4])
if first then
  return cjson.decode(first).position
end
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if top[1] then
  local p = tonumber(string.match(top[1][1], '^0%-(%d+)$'))
  if p and p > seq then seq = p end
end
redis.call('SET', KEYS[3], ARGV[3], 'NX')
local epoch = redis.call('GET', KEYS[3])
local n = (#KEYS - 3) / 3
for i = 0, n - 1 do
  local k = 4 + 3 * i
  local id, exp = ARGV[k], ARGV[k + 2]
  local pos = string.format('%d', seq + i + 1)
  local rec = string.sub(ARGV[k + 1], 1, -2) .. ',"position":' .. pos .. '}'
  redis.call('SET', KEYS[k], rec, 'PXAT', exp)
  redis.call('ZADD', KEYS[k + 1], exp, id)
  redis.call('ZREMRANGEBYSCORE', KEYS[k + 1], '-inf', ARGV[2])
  local last = redis.call('ZRANGE', KEYS[k + 1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[k + 1], last[2])
  redis.call('ZADD', KEYS[k + 2], exp, id)
  redis.call('ZREMRANGEBYSCORE', KEYS[k + 2], '-inf', ARGV[2])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '0-' .. pos, 'r', rec, 'e', epoch)
end
redis.call('SET', KEYS[1], string.format('%d', seq + n))
return seq + 1
`)

// legacyStore stores b as the earlier version did.
func legacyStore(t testing.TB, s *Source, b batch) []authz.Record {
	t.Helper()
	entries := b.args[4].(int)
	args := append(append([]any{}, b.args[:3]...), b.args[5+entries:]...)
	for i := 4; i < len(args); i += 3 {
		// The earlier script took the record's JSON whole.
		head := args[i].([]byte)
		args[i] = append(bytes.TrimSuffix(head, []byte(`,"position":`)), '}')
	}
	first, err := legacyPutScript.Run(ctxT(t), s.rdb, b.keys, args...).Uint64()
	if err != nil {
		t.Fatalf("legacy put: %v", err)
	}
	out := make([]authz.Record, len(b.recs))
	for i, r := range b.recs {
		r.Position = first + uint64(i)
		out[i] = r
	}
	return out
}

// legacyPut stores recs as the earlier version did.
func legacyPut(t testing.TB, s *Source, recs ...authz.Record) []authz.Record {
	t.Helper()
	b, err := s.prepare(recs)
	if err != nil {
		t.Fatal(err)
	}
	return legacyStore(t, s, b)
}

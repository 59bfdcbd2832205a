package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/source"
)

// putScript stores one batch of records atomically.
//
// KEYS: seq, feed, epoch, then for each record: rec:<id>, idx:<key>,
// live:<kind>.
// ARGV: feed retention (positions), now (ms), a new epoch, the records per
// feed entry, the number of feed entries, each entry's payload (see
// batchEntry), then for each record: ID, its JSON up to its position
// (recordHead), its expiry (ms).
// It returns the position of the batch's first record; the others follow.
//
// When the first record is stored already, the batch was applied by an
// earlier attempt whose answer was lost: it returns that position and
// writes nothing. Positions continue after the larger of seq and the feed's
// newest entry, so that a lost seq key never makes XADD fail halfway. The
// epoch is set unless there is one (see "A Redis that lost its data" in the
// package documentation), and every feed entry carries it (field e), so
// that a follower learns it with the entries. Every read comes before the
// first write, so an error (or a refused write when Redis is out of memory)
// leaves nothing behind.
//
// Per record it runs three commands: SET of rec, ZADD of idx and its
// PEXPIREAT NX, which sets the expiry of an idx that holds the new record
// alone (before Redis 7.0, which has no NX, a ZCARD tells that first). An
// idx that held more (a key revoked again) is trimmed of expired members
// and takes the expiry of its longest-lived one. The live sets take the
// batch in one ZADD per 1,000 records and are trimmed once per batch, and
// the feed takes one entry per chunk of records (field b, first position in
// f, stream ID the last position), trimmed by position (MINID ~).
var putScript = goredis.NewScript(`
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
local chunk, entries = tonumber(ARGV[4]), tonumber(ARGV[5])
local base = 5 + entries
local n = (#KEYS - 3) / 3
local live, kinds = {}, {}
local nx = (redis.REDIS_VERSION_NUM or 0) >= 0x070000
for i = 0, n - 1 do
  local k, a = 4 + 3 * i, base + 1 + 3 * i
  local id, exp = ARGV[a], ARGV[a + 2]
  redis.call('SET', KEYS[k], ARGV[a + 1] .. string.format('%d', seq + i + 1) .. '}', 'PXAT', exp)
  local idx = KEYS[k + 1]
  redis.call('ZADD', idx, exp, id)
  local alone
  if nx then
    alone = redis.call('PEXPIREAT', idx, exp, 'NX') == 1
  else
    alone = redis.call('ZCARD', idx) == 1
    if alone then redis.call('PEXPIREAT', idx, exp) end
  end
  if not alone then
    redis.call('ZREMRANGEBYSCORE', idx, '-inf', ARGV[2])
    local last = redis.call('ZRANGE', idx, -1, -1, 'WITHSCORES')
    redis.call('PEXPIREAT', idx, last[2])
  end
  local l = live[KEYS[k + 2]]
  if not l then
    l = {}
    live[KEYS[k + 2]] = l
    kinds[#kinds + 1] = KEYS[k + 2]
  end
  l[#l + 1] = exp
  l[#l + 1] = id
end
for _, key in ipairs(kinds) do
  local l = live[key]
  for j = 1, #l, 2000 do
    redis.call('ZADD', key, unpack(l, j, math.min(j + 1999, #l)))
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[2])
end
local keep = tonumber(ARGV[1])
for c = 0, entries - 1 do
  local lo, hi = seq + c * chunk + 1, seq + math.min((c + 1) * chunk, n)
  local id = '0-' .. string.format('%d', hi)
  local fields = {'f', string.format('%d', lo), 'b', ARGV[6 + c], 'e', epoch}
  if hi > keep then
    redis.call('XADD', KEYS[2], 'MINID', '~', '0-' .. string.format('%d', hi - keep + 1), id, unpack(fields))
  else
    redis.call('XADD', KEYS[2], id, unpack(fields))
  end
end
redis.call('SET', KEYS[1], string.format('%d', seq + n))
return seq + 1
`)

// MaxBatch caps the records of one Put: one script runs them all, and
// Redis serves nobody else meanwhile.
const MaxBatch = 10_000

// Put validates recs and stores them all with one script, so that either
// all or none are stored; each gets its feed entry in the same step. It
// sets ID (128 random bits in hex), Position and, when zero, CreatedAt.
// Every record needs an ExpiresAt after its CreatedAt and after now.
func (s *Source) Put(ctx context.Context, recs []authz.Record) ([]authz.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, nil
	}
	if len(recs) > MaxBatch {
		return nil, fmt.Errorf("put revocations: %d records, at most %d per call", len(recs), MaxBatch)
	}
	b, err := s.prepare(recs)
	if err != nil {
		return nil, err
	}
	return s.store(ctx, b)
}

// batch is a Put ready to run: the records with their IDs, and the keys
// and arguments of putScript.
type batch struct {
	recs []authz.Record
	keys []string
	args []any
}

// prepare validates recs and makes their batch.
func (s *Source) prepare(recs []authz.Record) (batch, error) {
	now := s.now()
	epoch, err := newID()
	if err != nil {
		return batch{}, err
	}
	entries := (len(recs) + feedChunk - 1) / feedChunk
	b := batch{
		recs: make([]authz.Record, len(recs)),
		keys: make([]string, 0, 3+3*len(recs)),
		args: make([]any, 0, 5+entries+3*len(recs)),
	}
	b.keys = append(b.keys, s.k.seq(), s.k.feed(), s.k.epoch())
	b.args = append(b.args, s.retention, now.UnixMilli(), epoch, feedChunk, entries)
	perRecord := make([]any, 0, 3*len(recs))
	for i, r := range recs {
		if err := r.ValidateStored(); err != nil {
			return batch{}, fmt.Errorf("record %d: %w", i, err)
		}
		if r.CreatedAt.IsZero() {
			r.CreatedAt = now
		}
		switch {
		case !r.ExpiresAt.After(r.CreatedAt):
			return batch{}, fmt.Errorf("record %d: %w: expires_at %s is not after created_at %s",
				i, authz.ErrInvalidRecord, r.ExpiresAt.Format(time.RFC3339), r.CreatedAt.Format(time.RFC3339))
		case !r.ExpiresAt.After(now):
			return batch{}, fmt.Errorf("record %d: %w: expires_at %s is not in the future",
				i, authz.ErrInvalidRecord, r.ExpiresAt.Format(time.RFC3339))
		}
		id, err := newID()
		if err != nil {
			return batch{}, err
		}
		r.ID, r.Position = id, 0
		data, err := recordHead(r)
		if err != nil {
			return batch{}, fmt.Errorf("record %d: %w", i, err)
		}
		b.recs[i] = r
		b.keys = append(b.keys, s.k.rec(id), s.k.idx(r.LookupKey()), s.k.live(r.Kind))
		perRecord = append(perRecord, id, data, expiryMillis(r.ExpiresAt))
	}
	for lo := 0; lo < len(recs); lo += feedChunk {
		data, err := encodeBatch(b.recs[lo:min(lo+feedChunk, len(recs))])
		if err != nil {
			return batch{}, err
		}
		b.args = append(b.args, data)
	}
	b.args = append(b.args, perRecord...)
	return b, nil
}

// recordHead returns the stored JSON of r (without a position) up to
// where its position goes: the script appends the position and the
// closing brace, with one concatenation.
func recordHead(r authz.Record) ([]byte, error) {
	r.Position = 0
	data, err := json.Marshal(r)
	if err != nil || len(data) < 2 || data[len(data)-1] != '}' {
		return nil, fmt.Errorf("encode: %v", err)
	}
	return append(data[:len(data)-1], `,"position":`...), nil
}

// store runs putScript for b and returns its records with their positions.
func (s *Source) store(ctx context.Context, b batch) ([]authz.Record, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	first, err := putScript.Run(ctx, s.rdb, b.keys, b.args...).Uint64()
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("put %d revocations", len(b.recs)), err)
	}
	out := make([]authz.Record, len(b.recs))
	for i, r := range b.recs {
		r.Position = first + uint64(i)
		out[i] = r
	}
	return out, nil
}

// expiryMillis returns t in Unix milliseconds, rounded up so that Redis
// never drops a record before its ExpiresAt.
func expiryMillis(t time.Time) string {
	ms := t.UnixMilli()
	if t.Sub(time.UnixMilli(ms)) > 0 {
		ms++
	}
	return strconv.FormatInt(ms, 10)
}

// newID returns a random 128-bit record ID in hex.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("record id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// liftScript lifts one record atomically.
//
// KEYS: seq, feed, epoch, rec:<id>, idx:<key>, live:<kind>, lifted:<id>.
// ARGV: feed retention, a new epoch, the record's ID, the lift entry's
// JSON without a position, its expiry (ms).
// It returns {1, the earlier lift entry} when the record was lifted
// already (a retry of this very lift finds its own entry there), {0} when
// the record is gone (never stored, or expired), else {2, the lift
// entry's position}: it deletes the record from rec, idx and live, keeps
// the entry in lifted until the record would have expired, and appends it
// to the feed (field r, the entry's JSON, and the epoch in e), trimming it
// as putScript does.
var liftScript = goredis.NewScript(`
local prev = redis.call('GET', KEYS[7])
if prev then
  return {1, prev}
end
if redis.call('EXISTS', KEYS[4]) == 0 then
  return {0}
end
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if top[1] then
  local p = tonumber(string.match(top[1][1], '^0%-(%d+)$'))
  if p and p > seq then seq = p end
end
redis.call('SET', KEYS[3], ARGV[2], 'NX')
local epoch = redis.call('GET', KEYS[3])
local pos = string.format('%d', seq + 1)
local rec = string.sub(ARGV[4], 1, -2) .. ',"position":' .. pos .. '}'
redis.call('DEL', KEYS[4])
redis.call('ZREM', KEYS[5], ARGV[3])
redis.call('ZREM', KEYS[6], ARGV[3])
redis.call('SET', KEYS[7], rec, 'PXAT', ARGV[5])
local keep = tonumber(ARGV[1])
if seq + 1 > keep then
  redis.call('XADD', KEYS[2], 'MINID', '~', '0-' .. string.format('%d', seq + 2 - keep), '0-' .. pos, 'r', rec, 'e', epoch)
else
  redis.call('XADD', KEYS[2], '0-' .. pos, 'r', rec, 'e', epoch)
end
redis.call('SET', KEYS[1], pos)
return {2, seq + 1}
`)

// Lift lifts the unexpired record id with one script (see liftScript): it
// leaves rec, idx and live, and its lift entry goes to the feed. It returns
// the lift entry.
func (s *Source) Lift(ctx context.Context, id, actor, reason string) (authz.Record, error) {
	op := fmt.Sprintf("lift revocation %q", id)
	rec, err := s.Get(ctx, id)
	if errors.Is(err, source.ErrNotFound) {
		if prev, perr := s.lifted(ctx, id); perr != nil || prev.ID != "" {
			if perr != nil {
				return authz.Record{}, s.wrap(op, perr)
			}
			return prev, liftedErr(op, prev)
		}
	}
	if err != nil {
		return authz.Record{}, err
	}
	lift, err := source.NewLift(rec, actor, reason, s.now())
	if err != nil {
		return authz.Record{}, fmt.Errorf("%s: %w", op, err)
	}
	if lift.ID, err = newID(); err != nil {
		return authz.Record{}, err
	}
	data, err := json.Marshal(lift)
	if err != nil {
		return authz.Record{}, fmt.Errorf("%s: encode: %w", op, err)
	}
	epoch, err := newID()
	if err != nil {
		return authz.Record{}, err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	keys := []string{s.k.seq(), s.k.feed(), s.k.epoch(), s.k.rec(id), s.k.idx(rec.LookupKey()), s.k.live(rec.Kind), s.k.lifted(id)}
	res, err := liftScript.Run(ctx, s.rdb, keys, s.retention, epoch, id, data, expiryMillis(lift.ExpiresAt)).Slice()
	if err != nil {
		return authz.Record{}, s.wrap(op, err)
	}
	code, _ := res[0].(int64)
	switch {
	case code == 0:
		return authz.Record{}, fmt.Errorf("%s: %w", op, source.ErrNotFound)
	case code == 1 && len(res) == 2:
		str, _ := res[1].(string)
		prev, err := decodeRecord(lift.ID, str)
		if err == nil {
			return prev, nil // this lift, applied by an earlier attempt
		}
		if prev, err = decodeLift(str); err != nil {
			return authz.Record{}, s.wrap(op, err)
		}
		return prev, liftedErr(op, prev)
	case code == 2 && len(res) == 2:
		pos, _ := res[1].(int64)
		lift.Position = uint64(pos)
		return lift, nil
	}
	return authz.Record{}, s.wrap(op, fmt.Errorf("unexpected answer %v", res))
}

// lifted returns the lift entry of record id, zero when it has none.
func (s *Source) lifted(ctx context.Context, id string) (authz.Record, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	data, err := s.rdb.Get(ctx, s.k.lifted(id)).Result()
	switch {
	case errors.Is(err, goredis.Nil):
		return authz.Record{}, nil
	case err != nil:
		return authz.Record{}, err
	}
	return decodeLift(data)
}

// decodeLift decodes a stored lift entry.
func decodeLift(data string) (authz.Record, error) {
	var r authz.Record
	if err := json.Unmarshal([]byte(data), &r); err != nil || !r.IsLift() {
		return r, fmt.Errorf("lift entry does not decode: %v", err)
	}
	return r, nil
}

// liftedErr is the error of lifting a record lifted already by prev.
func liftedErr(op string, prev authz.Record) error {
	return fmt.Errorf("%s: %w by %s at %s (%s)", op, source.ErrLifted, prev.Actor, prev.CreatedAt.UTC().Format(time.RFC3339), prev.Reason)
}

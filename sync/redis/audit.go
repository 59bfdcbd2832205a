package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/sync/audit"
)

// DefaultAuditMaxLen is about how many entries the audit stream keeps
// when no retention is configured.
const DefaultAuditMaxLen = 1_000_000

// AuditRetention is how long the audit stream keeps entries: about MaxLen
// entries (XADD MAXLEN ~), or, when MaxAge is set, entries younger than
// MaxAge by the Redis clock (XADD MINID ~). Give every writer the same.
type AuditRetention struct {
	MaxLen int64
	MaxAge time.Duration
}

// appendAuditScript appends one sealed entry if the caller sealed it after
// the current head, so that every writer of every node extends one chain.
//
// KEYS: audit stream, audit head. ARGV: the head the caller read ("" for
// none), the entry JSON, the new head, "maxlen" or "minid", the retention
// (entries, or age in ms).
// It returns {1, stream id} when appended, {0, current head} when the head
// moved (the caller seals again after it).
var appendAuditScript = goredis.NewScript(`
local head = redis.call('GET', KEYS[2]) or ''
if head ~= ARGV[1] then
  return {0, head}
end
local id
if ARGV[4] == 'minid' then
  local t = redis.call('TIME')
  local min = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[5])
  if min < 0 then min = 0 end
  id = redis.call('XADD', KEYS[1], 'MINID', '~', string.format('%d', min), '*', 'e', ARGV[2])
else
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*', 'e', ARGV[2])
end
redis.call('SET', KEYS[2], ARGV[3])
return {1, id}
`)

// maxAuditAttempts bounds the seal-and-append rounds of one Append. Each
// failed round means another writer appended, so the trail as a whole
// always progresses; only a writer that loses this many races gives up.
const maxAuditAttempts = 1000

// Audit returns the audit trail kept in this Redis: a stream of entries
// and a key holding its head, both under the source's prefix.
func (s *Source) Audit(r AuditRetention) (audit.Store, error) {
	if r.MaxLen < 0 || r.MaxAge < 0 {
		return nil, fmt.Errorf("redis audit retention: negative (max-len %d, max-age %v)", r.MaxLen, r.MaxAge)
	}
	if r.MaxAge > 0 && r.MaxAge < time.Millisecond {
		return nil, fmt.Errorf("redis audit retention: max-age %v under a millisecond", r.MaxAge)
	}
	if r.MaxLen == 0 {
		r.MaxLen = DefaultAuditMaxLen
	}
	return &auditStream{s: s, ret: r}, nil
}

type auditStream struct {
	s   *Source
	ret AuditRetention
}

func (k keys) audit() string     { return k.prefix + "audit" }
func (k keys) auditHead() string { return k.prefix + "audit:head" }

// Append seals e after the head it reads and appends it if that is still
// the head, else seals it again after the new one.
func (a *auditStream) Append(ctx context.Context, e audit.Entry) (audit.Entry, error) {
	ctx, cancel := a.s.opContext(ctx)
	defer cancel()
	mode, limit := "maxlen", strconv.FormatInt(a.ret.MaxLen, 10)
	if a.ret.MaxAge > 0 {
		mode, limit = "minid", strconv.FormatInt(a.ret.MaxAge.Milliseconds(), 10)
	}
	raw, err := a.s.rdb.Get(ctx, a.s.k.auditHead()).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return audit.Entry{}, a.s.wrap("read audit head", err)
	}
	for range maxAuditAttempts {
		head, err := parseHead(raw)
		if err != nil {
			return audit.Entry{}, err
		}
		sealed := audit.Seal(e, head)
		data, err := json.Marshal(sealed)
		if err != nil {
			return audit.Entry{}, fmt.Errorf("encode audit entry: %w", err)
		}
		res, err := appendAuditScript.Run(ctx, a.s.rdb, []string{a.s.k.audit(), a.s.k.auditHead()},
			raw, data, formatHead(audit.Head{Seq: sealed.Seq, Hash: sealed.Hash}), mode, limit).Slice()
		if err != nil {
			return audit.Entry{}, a.s.wrap("append audit entry", err)
		}
		if len(res) != 2 {
			return audit.Entry{}, fmt.Errorf("append audit entry: unexpected answer %v", res)
		}
		if ok, _ := res[0].(int64); ok == 1 {
			return sealed, nil
		}
		raw, _ = res[1].(string)
	}
	return audit.Entry{}, fmt.Errorf("append audit entry: %w %d times in a row", audit.ErrConflict, maxAuditAttempts)
}

// formatHead and parseHead encode the head key: "<seq> <hash>".
func formatHead(h audit.Head) string { return strconv.FormatUint(h.Seq, 10) + " " + h.Hash }

func parseHead(raw string) (audit.Head, error) {
	if raw == "" {
		return audit.Head{}, nil
	}
	seq, hash, ok := strings.Cut(raw, " ")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || err != nil || hash == "" {
		return audit.Head{}, fmt.Errorf("audit head %q does not decode", raw)
	}
	return audit.Head{Seq: n, Hash: hash}, nil
}

// Head returns the stored head.
func (a *auditStream) Head(ctx context.Context) (audit.Head, error) {
	ctx, cancel := a.s.opContext(ctx)
	defer cancel()
	raw, err := a.s.rdb.Get(ctx, a.s.k.auditHead()).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return audit.Head{}, a.s.wrap("read audit head", err)
	}
	return parseHead(raw)
}

// Trims is true: retention drops the oldest entries.
func (a *auditStream) Trims() bool { return true }

// streamIDRe matches a stream entry ID, the positions of the audit trail.
var streamIDRe = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

// auditScanBatch is the entries one XRANGE reads.
const auditScanBatch = 1000

// Scan calls fn with the stream's entries after the stream ID after,
// oldest first.
func (a *auditStream) Scan(ctx context.Context, after string, fn func(audit.Stored) bool) error {
	start := "-"
	if after != "" {
		if !streamIDRe.MatchString(after) {
			return fmt.Errorf("%w: %q", audit.ErrInvalidCursor, after)
		}
		start = "(" + after
	}
	for {
		cctx, cancel := a.s.opContext(ctx)
		msgs, err := a.s.rdb.XRangeN(cctx, a.s.k.audit(), start, "+", auditScanBatch).Result()
		cancel()
		if err != nil {
			if strings.Contains(err.Error(), "Invalid stream ID") {
				return fmt.Errorf("%w: %q", audit.ErrInvalidCursor, after)
			}
			return a.s.wrap("read audit trail", err)
		}
		for _, m := range msgs {
			st := audit.Stored{Pos: m.ID}
			data, ok := m.Values["e"].(string)
			switch {
			case !ok:
				st.Err = errors.New("no entry field")
			default:
				st.Err = json.Unmarshal([]byte(data), &st.Entry)
			}
			if !fn(st) {
				return nil
			}
		}
		if len(msgs) < auditScanBatch {
			return nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

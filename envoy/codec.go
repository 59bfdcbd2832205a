package envoy

import (
	"bytes"
	"hash/maphash"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// checkCodec is gRPC's proto codec, but for the jwt_authn metadata of a
// CheckRequest: a revocation-only check reads the payload jwt_authn
// verified, and decoding that Struct (a map, a Value per claim) cost more
// than the rest of the check. The codec decodes each distinct payload
// once and hands later requests carrying the same one the Struct decoded
// then, shared and read-only (nothing in the server writes to a request).
//
// Envoy serializes map entries in no fixed order, so requests carrying
// one payload seldom carry the same bytes: a payload is known by a
// canonical form of its wire bytes (canonStruct) in which map entries are
// sorted. Two payloads share a canonical form only if they decode to the
// same Struct; a request the fast path does not understand exactly (a
// field repeated, an entry out of the usual shape, a bound exceeded) is
// decoded by proto.Unmarshal as a whole, so the codec decodes every input
// to what proto.Unmarshal gives, or fails where it fails (FuzzCheckCodec).
type checkCodec struct {
	encoding.CodecV2
	memo *structMemo
}

// NewCheckCodec returns the codec of jwtguard's gRPC server (see
// ServerOptions), with a memo of its own: gRPC's proto codec, but for the
// jwt_authn metadata of a CheckRequest, each distinct payload of which it
// decodes once.
func NewCheckCodec() encoding.CodecV2 { return newCheckCodec() }

// newCheckCodec returns a codec with a memo of its own.
func newCheckCodec() checkCodec {
	return checkCodec{CodecV2: encoding.GetCodecV2(protocodec.Name), memo: newStructMemo()}
}

// Unmarshal decodes data into v; see checkCodec.
func (c checkCodec) Unmarshal(data mem.BufferSlice, v any) error {
	req, ok := v.(*authv3.CheckRequest)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return c.memo.unmarshalCheck(buf.ReadOnlyData(), req)
}

// Field numbers on the path to jwt_authn's metadata: CheckRequest.attributes,
// AttributeContext.metadata_context, Metadata.filter_metadata (a map:
// entries of key 1 and value 2), Struct.fields (the same), and
// Value.struct_value.
const (
	fieldAttributes     = 1
	fieldMetadata       = 11
	fieldFilterMetadata = 1
	fieldEntryKey       = 1
	fieldEntryValue     = 2
	fieldStructValue    = 5
)

// Bounds of the memo: payloads larger than these are decoded every time
// (as proto.Unmarshal would), so that the memo holds at most memoSets ×
// memoWays payloads of at most maxCanon bytes and maxEntries values.
const (
	memoSets         = 2048
	memoWays         = 4
	maxCanon         = 2048
	maxEntries       = 64
	maxStructEntries = 32 // of one Struct
	maxDepth         = 4
)

// structMemo maps canonical forms to decoded Structs: a table of sets of
// memoWays entries, a payload's set chosen by the hash of its canonical
// form, the oldest entry of a full set replaced; read and written without
// locks.
type structMemo struct {
	seed  maphash.Seed
	slots [memoSets * memoWays]atomic.Pointer[memoEntry]
	next  [memoSets]atomic.Uint32 // the way of each set to replace next
	miss  atomic.Uint64
}

type memoEntry struct {
	hash  uint64
	canon []byte
	s     *structpb.Struct
}

func newStructMemo() *structMemo { return &structMemo{seed: maphash.MakeSeed()} }

// unmarshalCheck decodes b into req, as proto.Unmarshal does.
func (m *structMemo) unmarshalCheck(b []byte, req *authv3.CheckRequest) error {
	var p checkParts
	if !p.locate(b) {
		return proto.Unmarshal(b, req)
	}
	var canon canonBuf
	if !canonStruct(&canon, p.value, 0, new(int)) {
		return proto.Unmarshal(b, req)
	}
	s, err := m.get(canon.bytes(), p.value)
	if err != nil {
		return err
	}
	// The message is the merge of its fields in order (the protobuf
	// encoding's rule), so decoding the parts around the entry into the
	// messages that hold them is decoding the whole.
	// Each part is decoded with the recursion limit left at its depth in
	// the whole (the decoder counts one a message; a map entry is not one).
	proto.Reset(req)
	attrs := &authv3.AttributeContext{}
	md := &corev3.Metadata{}
	for _, part := range []struct {
		b     []byte
		m     proto.Message
		depth int
	}{
		{b[:p.attrs[0]], req, 0}, {b[p.attrs[1]:], req, 0},
		{b[p.attrsBody[0]:p.meta[0]], attrs, 1}, {b[p.meta[1]:p.attrsBody[1]], attrs, 1},
		{b[p.metaBody[0]:p.entry[0]], md, 2}, {b[p.entry[1]:p.metaBody[1]], md, 2},
	} {
		if len(part.b) == 0 {
			continue
		}
		merge := proto.UnmarshalOptions{Merge: true, RecursionLimit: protowire.DefaultRecursionLimit - part.depth}
		if err := merge.Unmarshal(part.b, part.m); err != nil {
			return err
		}
	}
	if md.FilterMetadata == nil {
		md.FilterMetadata = make(map[string]*structpb.Struct, 1)
	}
	md.FilterMetadata[JWTAuthnNamespace] = s
	attrs.MetadataContext = md
	req.Attributes = attrs
	return nil
}

// get returns the Struct of canon, decoding raw when the memo has none.
func (m *structMemo) get(canon, raw []byte) (*structpb.Struct, error) {
	h := maphash.Bytes(m.seed, canon)
	set := h % memoSets
	ways := m.slots[set*memoWays : (set+1)*memoWays]
	for i := range ways {
		if e := ways[i].Load(); e != nil && e.hash == h && bytes.Equal(e.canon, canon) {
			return e.s, nil
		}
	}
	m.miss.Add(1)
	s := &structpb.Struct{}
	// At most maxCanon bytes, it is far shallower than the recursion limit.
	if err := proto.Unmarshal(raw, s); err != nil {
		return nil, err
	}
	ways[m.next[set].Add(1)%memoWays].Store(&memoEntry{hash: h, canon: bytes.Clone(canon), s: s})
	return s, nil
}

// checkParts are the offsets in an encoded CheckRequest of the one
// attributes field, its one metadata_context field and its one
// filter_metadata entry keyed JWTAuthnNamespace: [start, end) of each
// field with its tag, and of the bodies; value is that entry's Struct.
type checkParts struct {
	attrs, attrsBody [2]int
	meta, metaBody   [2]int
	entry            [2]int
	value            []byte
}

// locate finds the parts, reporting false when b holds no jwt_authn
// metadata, or holds it in any but the plain shape: each message on the
// way present once, the entry a key then a value.
func (p *checkParts) locate(b []byte) bool {
	var ok bool
	if p.attrs, p.attrsBody, ok = onlyField(b, 0, fieldAttributes); !ok {
		return false
	}
	if p.meta, p.metaBody, ok = onlyField(b[:p.attrsBody[1]], p.attrsBody[0], fieldMetadata); !ok {
		return false
	}
	found := false
	for off := p.metaBody[0]; off < p.metaBody[1]; {
		num, typ, n := protowire.ConsumeTag(b[off:p.metaBody[1]])
		if n < 0 {
			return false
		}
		size := protowire.ConsumeFieldValue(num, typ, b[off+n:p.metaBody[1]])
		if size < 0 {
			return false
		}
		end := off + n + size
		if num == fieldFilterMetadata {
			if typ != protowire.BytesType {
				return false
			}
			body, _ := protowire.ConsumeBytes(b[off+n : end])
			key, value, ok := plainEntry(body)
			if !ok {
				return false
			}
			if string(key) == JWTAuthnNamespace {
				if found {
					return false
				}
				found, p.entry, p.value = true, [2]int{off, end}, value
			}
		}
		off = end
	}
	return found
}

// onlyField returns the extent, tag included, and the body of the one
// length-delimited field num of the message b[from:]; false when it is
// absent, repeated or not length-delimited, or b does not parse.
func onlyField(b []byte, from int, num protowire.Number) (field, body [2]int, ok bool) {
	for off := from; off < len(b); {
		n, typ, tn := protowire.ConsumeTag(b[off:])
		if tn < 0 {
			return field, body, false
		}
		size := protowire.ConsumeFieldValue(n, typ, b[off+tn:])
		if size < 0 {
			return field, body, false
		}
		if n == num {
			if ok || typ != protowire.BytesType {
				return field, body, false
			}
			_, ln := protowire.ConsumeVarint(b[off+tn:])
			field = [2]int{off, off + tn + size}
			body = [2]int{off + tn + ln, off + tn + size}
			ok = true
		}
		off += tn + size
	}
	return field, body, ok
}

// plainEntry splits a map entry encoded as its key then its value, each
// once and length-delimited, with nothing else.
func plainEntry(b []byte) (key, value []byte, ok bool) {
	key, kn := lenField(b, fieldEntryKey)
	if kn < 0 {
		return nil, nil, false
	}
	value, vn := lenField(b[kn:], fieldEntryValue)
	if vn < 0 || kn+vn != len(b) {
		return nil, nil, false
	}
	return key, value, true
}

// lenField returns the contents of the length-delimited field num that b
// starts with, and the field's length; -1 when b starts with anything
// else. Tags and lengths of one byte, the usual, are read here.
func lenField(b []byte, num protowire.Number) ([]byte, int) {
	if len(b) >= 2 && b[0] == byte(num)<<3|byte(protowire.BytesType) && b[1] < 0x80 {
		if end := 2 + int(b[1]); end <= len(b) {
			return b[2:end], end
		}
		return nil, -1
	}
	n, typ, tn := protowire.ConsumeTag(b)
	if tn < 0 || n != num || typ != protowire.BytesType {
		return nil, -1
	}
	v, vn := protowire.ConsumeBytes(b[tn:])
	if vn < 0 {
		return nil, -1
	}
	return v, tn + vn
}

// canonBuf holds a canonical form being written: a fixed array, so that
// it stays on the decoding goroutine's stack; writes past its end fail.
type canonBuf struct {
	b [maxCanon]byte
	n int
}

func (c *canonBuf) bytes() []byte { return c.b[:c.n] }

func (c *canonBuf) putByte(v byte) bool {
	if c.n == len(c.b) {
		return false
	}
	c.b[c.n] = v
	c.n++
	return true
}

func (c *canonBuf) putBytes(p []byte) bool {
	if len(p) > len(c.b)-c.n {
		return false
	}
	c.n += copy(c.b[c.n:], p)
	return true
}

// putLen writes a length; a canonical form is shorter than 2^14 bytes,
// so it takes at most two bytes, as a varint.
func (c *canonBuf) putLen(v int) bool {
	if v < 0x80 {
		return c.putByte(byte(v))
	}
	return v < 1<<14 && c.putByte(byte(v)|0x80) && c.putByte(byte(v>>7))
}

// entry is where a Struct entry's key and value lie in the encoded
// Struct being put in canonical form.
type entry struct{ kFrom, kTo, vFrom, vTo uint32 }

// canonStruct writes to c the canonical form of the encoded Struct b:
// its entries sorted by key, each its key and the canonical form of its
// Value. A Value that is a Struct alone is put in canonical form too
// (marked 'V'); any other Value is kept as it came (marked 'R'), since the
// same bytes always decode to the same Value. It reports false (use
// proto.Unmarshal) for an entry out of the plain shape, a key given twice
// (the decoder keeps the last), more than maxStructEntries entries in one
// Struct or maxEntries in all, more than maxDepth levels, or a form
// longer than maxCanon.
func canonStruct(c *canonBuf, b []byte, depth int, entries *int) bool {
	if depth >= maxDepth || len(b) > maxCanon {
		return false
	}
	var (
		ents [maxStructEntries]entry
		n    int
	)
	for off := 0; off < len(b); {
		body, bn := lenField(b[off:], 1)
		if bn < 0 {
			return false
		}
		off += bn
		key, value, ok := plainEntry(body)
		if !ok || n == len(ents) {
			return false
		}
		if *entries++; *entries > maxEntries {
			return false
		}
		// Where key and value lie in b, whose slices they are.
		kFrom, vFrom := cap(b)-cap(key), cap(b)-cap(value)
		e := entry{uint32(kFrom), uint32(kFrom + len(key)), uint32(vFrom), uint32(vFrom + len(value))}
		// Insertion sort: a payload has a few dozen claims at most.
		i := n
		for ; i > 0; i-- {
			cmp := bytes.Compare(b[ents[i-1].kFrom:ents[i-1].kTo], key)
			if cmp == 0 {
				return false
			}
			if cmp < 0 {
				break
			}
			ents[i] = ents[i-1]
		}
		ents[i] = e
		n++
	}
	if !c.putByte('S') || !c.putLen(n) {
		return false
	}
	for _, e := range ents[:n] {
		key := b[e.kFrom:e.kTo]
		if !c.putLen(len(key)) || !c.putBytes(key) || !canonValue(c, b[e.vFrom:e.vTo], depth, entries) {
			return false
		}
	}
	return true
}

// canonValue writes to c the canonical form of the encoded Value b.
func canonValue(c *canonBuf, b []byte, depth int, entries *int) bool {
	if s, sn := lenField(b, fieldStructValue); sn == len(b) {
		return c.putByte('V') && canonStruct(c, s, depth+1, entries)
	}
	return c.putByte('R') && c.putLen(len(b)) && c.putBytes(b)
}

package authz

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"math/big"
	"testing"
)

// edPoint is a point of Ed25519 in affine coordinates, computed with
// math/big: slow, but independent of the blocklist it checks.
type edPoint struct{ x, y *big.Int }

var (
	edP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	edD = func() *big.Int { // -121665/121666
		d := new(big.Int).ModInverse(big.NewInt(121666), edP)
		d.Mul(d, big.NewInt(-121665))
		return d.Mod(d, edP)
	}()
	edL, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
)

func (a edPoint) add(b edPoint) edPoint {
	mod := func(v *big.Int) *big.Int { return v.Mod(v, edP) }
	xx, yy := new(big.Int).Mul(a.x, b.x), new(big.Int).Mul(a.y, b.y)
	dxy := mod(new(big.Int).Mul(edD, new(big.Int).Mul(xx, yy)))
	x := new(big.Int).Add(new(big.Int).Mul(a.x, b.y), new(big.Int).Mul(a.y, b.x))
	y := new(big.Int).Add(yy, xx) // a = -1
	x.Mul(x, new(big.Int).ModInverse(mod(new(big.Int).Add(big.NewInt(1), dxy)), edP))
	y.Mul(y, new(big.Int).ModInverse(mod(new(big.Int).Sub(big.NewInt(1), dxy)), edP))
	return edPoint{mod(x), mod(y)}
}

func (a edPoint) mul(k *big.Int) edPoint {
	r := edPoint{big.NewInt(0), big.NewInt(1)}
	for i := k.BitLen() - 1; i >= 0; i-- {
		r = r.add(r)
		if k.Bit(i) == 1 {
			r = r.add(a)
		}
	}
	return r
}

// edPointWithY returns a point with coordinate y, if there is one.
func edPointWithY(y *big.Int) (edPoint, bool) {
	y2 := new(big.Int).Mul(y, y)
	v := new(big.Int).Add(new(big.Int).Mul(edD, y2), big.NewInt(1))
	x2 := new(big.Int).Mul(new(big.Int).Sub(y2, big.NewInt(1)), new(big.Int).ModInverse(v.Mod(v, edP), edP))
	x := new(big.Int).ModSqrt(x2.Mod(x2, edP), edP)
	return edPoint{x, y}, x != nil
}

// encode is the 32-byte encoding of y (plus a multiple of p, to build
// non-canonical ones) with the sign bit given.
func encode(y *big.Int, sign uint) []byte {
	b := y.FillBytes(make([]byte, 32))
	for i, j := 0, 31; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	b[31] |= byte(sign) << 7
	return b
}

// smallOrderPoints finds the eight points of small order as [L]P of
// points P of the whole group.
func smallOrderPoints(t *testing.T) []edPoint {
	t.Helper()
	seen := map[string]edPoint{}
	for i := 0; len(seen) < 8 && i < 256; i++ {
		h := sha256.Sum256([]byte{byte(i)})
		p, ok := edPointWithY(new(big.Int).Mod(new(big.Int).SetBytes(h[:]), edP))
		if !ok {
			continue
		}
		tp := p.mul(edL)
		seen[tp.x.String()+","+tp.y.String()] = tp
	}
	if len(seen) != 8 {
		t.Fatalf("found %d points of small order, want 8", len(seen))
	}
	var out []edPoint
	for _, p := range seen {
		out = append(out, p)
	}
	return out
}

func TestCheckEd25519(t *testing.T) {
	// Every encoding of every small-order point is refused: both signs of
	// x, and y + p where it fits in 255 bits.
	for _, p := range smallOrderPoints(t) {
		for _, y := range []*big.Int{p.y, new(big.Int).Add(p.y, edP)} {
			if y.BitLen() > 255 {
				continue
			}
			for sign := uint(0); sign < 2; sign++ {
				if err := checkEd25519(encode(y, sign)); err == nil {
					t.Errorf("small-order point y=%x sign=%d accepted", encode(y, sign), sign)
				}
			}
		}
	}
	// Every non-canonical y (p to 2^255-1) is refused.
	for y := new(big.Int).Set(edP); y.BitLen() <= 255; y.Add(y, big.NewInt(1)) {
		if err := checkEd25519(encode(y, 0)); err == nil {
			t.Errorf("non-canonical y=%x accepted", encode(y, 0))
		}
	}
	// Real keys pass.
	for range 64 {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkEd25519(pub); err != nil {
			t.Errorf("real key %x refused: %v", []byte(pub), err)
		}
	}
	if err := checkEd25519(make([]byte, 31)); err == nil {
		t.Error("a 31-byte key was accepted")
	}
}

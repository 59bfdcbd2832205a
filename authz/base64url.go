package authz

import (
	"errors"
	"fmt"
)

// This file decodes base64url (RFC 4648 section 5) without padding,
// canonical only: the encoding of the three parts of a compact JWS.

// invalidBase64 marks a byte outside the alphabet in base64URLValue.
const invalidBase64 = 0xff

var base64URLValue = func() (t [256]byte) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range t {
		t[i] = invalidBase64
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// checkBase64URLAlphabet reports the first byte of a token that is neither
// in the base64url alphabet nor a dot: padding, whitespace, line breaks
// (which Go's base64 decoder would skip) or the standard alphabet's '+' and
// '/'.
func checkBase64URLAlphabet(raw string) error {
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c != '.' && base64URLValue[c] == invalidBase64 {
			return fmt.Errorf("token: byte %d is %q, not base64url", i, c)
		}
	}
	return nil
}

// base64URLError explains why a part of raw did not decode, naming the
// first byte outside the alphabet if there is one.
func base64URLError(raw, part string, err error) error {
	if err := checkBase64URLAlphabet(raw); err != nil {
		return err
	}
	return fmt.Errorf("token %s: %w", part, err)
}

// decodedLen is the decoded length of a valid unpadded base64url string.
func decodedLen(s string) int { return len(s) * 6 / 8 }

// appendBase64URL appends the decoding of s to dst. It rejects characters
// outside the URL alphabet, padding, a length that leaves 6 dangling bits
// and non-zero unused trailing bits, so that every byte string has exactly
// one accepted encoding.
func appendBase64URL(dst []byte, s string) ([]byte, error) {
	if len(s)%4 == 1 {
		return dst, fmt.Errorf("base64url length %d is impossible", len(s))
	}
	var acc byte // OR of all values: invalidBase64 has bits no valid value has
	for len(s) >= 4 {
		a, b, c, d := base64URLValue[s[0]], base64URLValue[s[1]], base64URLValue[s[2]], base64URLValue[s[3]]
		acc |= a | b | c | d
		dst = append(dst, a<<2|b>>4, b<<4|c>>2, c<<6|d)
		s = s[4:]
	}
	switch len(s) {
	case 2:
		a, b := base64URLValue[s[0]], base64URLValue[s[1]]
		acc |= a | b
		if b&0x0f != 0 && acc&0xc0 == 0 {
			return dst, errors.New("base64url has non-zero trailing bits")
		}
		dst = append(dst, a<<2|b>>4)
	case 3:
		a, b, c := base64URLValue[s[0]], base64URLValue[s[1]], base64URLValue[s[2]]
		acc |= a | b | c
		if c&0x03 != 0 && acc&0xc0 == 0 {
			return dst, errors.New("base64url has non-zero trailing bits")
		}
		dst = append(dst, a<<2|b>>4, b<<4|c>>2)
	}
	if acc&0xc0 != 0 {
		return dst, errors.New("invalid base64url character")
	}
	return dst, nil
}

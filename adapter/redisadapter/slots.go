package redisadapter

import (
	"strconv"
	"strings"
	"sync"
)

// numSlots is the number of Redis Cluster hash slots.
const numSlots = 16384

var crcTable = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()

func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crcTable[byte(crc>>8)^s[i]]
	}
	return crc
}

// slotOf returns the cluster slot of a key or channel, honouring hash tags.
func slotOf(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key)) % numSlots
}

var (
	slotTagsOnce sync.Once
	slotTags     [numSlots]string
)

// slotTag returns a short string whose hash slot is slot, so that "{tag}"
// places a private channel in the same slot as another channel.
func slotTag(slot int) string {
	slotTagsOnce.Do(func() {
		left := numSlots
		for i := 0; left > 0; i++ {
			s := strconv.Itoa(i)
			if sl := slotOf(s); slotTags[sl] == "" {
				slotTags[sl] = s
				left--
			}
		}
	})
	return slotTags[slot]
}

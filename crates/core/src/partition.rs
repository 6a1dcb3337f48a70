//! Kafka's default keyed partitioning (the Java client's, and librdkafka's
//! `murmur2_random` for non-null keys): `toPositive(murmur2(key)) % n`.
//! tillsyn's producers are configured with it, so `tillsyn replay
//! --partitions N` can split a file exactly as the topics are split and
//! run one engine per partition, as the live service does.

/// MurmurHash2 (32-bit) with Kafka's seed, as in
/// `org.apache.kafka.common.utils.Utils.murmur2`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ len as u32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= u32::from(tail[2]) << 16;
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of `key` among `partitions` (at least 1).
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// The partition of the staff stage (and of the visits-by-staff topic) of
/// a staff member: the record key is the pseudonymous key's text form.
pub fn staff_partition(staff: crate::model::StaffKey, partitions: i32) -> usize {
    partition_for_key(staff.to_string().as_bytes(), partitions) as usize
}

/// The partition of the staff stage that holds a client (the client rules
/// run there): the pseudonymous client key's text form, hashed the same
/// way.
pub fn client_partition(client: crate::model::ClientKey, partitions: i32) -> usize {
    partition_for_key(client.to_string().as_bytes(), partitions) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Kafka's own `UtilsTest.testMurmur2`.
    #[test]
    fn matches_kafkas_murmur2() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key), expected, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn partitions_are_in_range() {
        for i in 0..1000 {
            let p = partition_for_key(format!("556036-{i:04}").as_bytes(), 3);
            assert!((0..3).contains(&p));
        }
    }
}

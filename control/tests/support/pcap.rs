//! RTP written into a pcap file for sipp's `play_pcap_audio`: the media a sipp caller plays is
//! made by the test (tones, key presses, espeak-ng speech) rather than taken from sipp's samples.

/// One RTP packet: version 2, `pt` with the marker bit when `marker`, SSRC 0x5eed.
pub fn rtp(pt: u8, marker: bool, sequence: u16, timestamp: u32, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(&timestamp.to_be_bytes());
    packet.extend_from_slice(&0x5eed_u32.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

/// A pcap (Ethernet/IPv4/UDP, 127.0.0.1 port 6000 → 6002) of `packets`, each at its time in
/// microseconds.
pub fn pcap(packets: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut pcap = Vec::new();
    pcap.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    pcap.extend_from_slice(&2u16.to_le_bytes());
    pcap.extend_from_slice(&4u16.to_le_bytes());
    for word in [0u32, 0, 65_535, 1] {
        pcap.extend_from_slice(&word.to_le_bytes());
    }
    for (micros, rtp) in packets {
        let udp_len = u16::try_from(8 + rtp.len()).expect("small packet");
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 0]);
        frame[16..18].copy_from_slice(&(20 + udp_len).to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        frame.extend_from_slice(&6000u16.to_be_bytes());
        frame.extend_from_slice(&6002u16.to_be_bytes());
        frame.extend_from_slice(&udp_len.to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(rtp);
        let len = u32::try_from(frame.len()).expect("length");
        for word in [micros / 1_000_000, micros % 1_000_000, len, len] {
            pcap.extend_from_slice(&word.to_le_bytes());
        }
        pcap.extend_from_slice(&frame);
    }
    pcap
}

/// [`pcap`] of `packets` one every 20 ms.
pub fn pcap_every_20_ms(packets: &[Vec<u8>]) -> Vec<u8> {
    let timed: Vec<(u32, Vec<u8>)> = (0u32..)
        .step_by(20_000)
        .zip(packets.iter().cloned())
        .collect();
    pcap(&timed)
}

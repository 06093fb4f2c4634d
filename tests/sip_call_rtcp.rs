//! RTCP beside a call's RTP (RFC 3550 §6): both ends report, each reads the other's reports
//! for the round trip and loss, a goodbye is heard, strangers' and broken reports are dropped,
//! and Wireshark's dissector (an implementation this project did not write) reads the unit's
//! compound packets as valid SR/RR, SDES and BYE.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use vigil::voice::g711::Law;
use vigil::voice::media::{Media, MediaStats};
use vigil::voice::sdp::{Agreed, Direction};
use vigil::voice::sim_call::SimCallPort;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn agreed(remote: SocketAddr) -> Agreed {
    Agreed {
        law: Law::Alaw,
        telephone_event: Some(101),
        remote,
        direction: Direction::SendRecv,
        rtcp: None,
        srtp: None,
        lines: Default::default(),
        rtcp_mux: false,
    }
}

/// Runs a call between two ends for `length`; the first end stops 300 ms before the second,
/// so the second hears its goodbye. `meanwhile` runs against the first end's RTCP port.
async fn call<F, Fut>(length: Duration, meanwhile: F) -> (MediaStats, MediaStats)
where
    F: FnOnce(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (a, b) = (
        Media::bind(LOOPBACK).await.unwrap(),
        Media::bind(LOOPBACK).await.unwrap(),
    );
    let (a_addr, b_addr) = (a.local(), b.local());
    assert_eq!(a_addr.port() % 2, 0, "RTP on an even port");
    let (a_port, _) = SimCallPort::new(vec![1000; 8000]);
    let (b_port, _) = SimCallPort::new(vec![-1000; 8000]);
    let (a_stop_tx, a_stop) = watch::channel(false);
    let (b_stop_tx, b_stop) = watch::channel(false);
    let (_a_agreed_tx, a_agreed) = watch::channel(agreed(b_addr));
    let (_b_agreed_tx, b_agreed) = watch::channel(agreed(a_addr));
    let (keys, _keys_rx) = mpsc::unbounded_channel();
    let a_run = tokio::spawn(a.run(a_agreed, Box::new(a_port), a_stop, keys.clone()));
    let b_run = tokio::spawn(b.run(b_agreed, Box::new(b_port), b_stop, keys));
    let a_rtcp = SocketAddr::new(LOOPBACK, a_addr.port() + 1);
    tokio::join!(tokio::time::sleep(length), meanwhile(a_rtcp));
    a_stop_tx.send_replace(true);
    let a_stats = a_run.await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    b_stop_tx.send_replace(true);
    (a_stats, b_run.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ends_report_and_read_the_round_trip_and_the_goodbye() {
    // Ten seconds: the first report goes out within 3.1 s and the next within 6.2 s after it
    // (RFC 3550 §6.2 for two parties), so each end has had the other's report on its SR.
    let (a, b) = call(Duration::from_secs(10), |a_rtcp| async move {
        // After both ends' first reports (so A has latched on B's RTCP address), a stranger
        // on the same host sends a well-formed report, and then garbage.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let stranger = tokio::net::UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
        let mut forged = Vec::new();
        vigil::voice::rtcp::write_report(&mut forged, 9, 0, None, None, "x", true);
        stranger.send_to(&forged, a_rtcp).await.unwrap();
        stranger.send_to(b"\x80\xc8garbage", a_rtcp).await.unwrap();
    })
    .await;
    for (end, stats) in [("A", &a), ("B", &b)] {
        assert!(
            stats.rtcp_sent >= 2,
            "{end} sent too few reports: {stats:?}"
        );
        assert!(stats.rtcp_received >= 1, "{end} read no report: {stats:?}");
        let rtt = stats
            .round_trip
            .unwrap_or_else(|| panic!("{end}: no round trip: {stats:?}"));
        assert!(
            rtt < Duration::from_millis(100),
            "{end}: round trip {rtt:?} on loopback"
        );
        assert_eq!(stats.far_end_lost, 0, "{end}: loss on loopback: {stats:?}");
    }
    assert!(
        a.rtcp_dropped >= 2,
        "the stranger's reports were not dropped: {a:?}"
    );
    assert!(
        !a.far_end_bye,
        "a stranger's BYE was taken as the far end's: {a:?}"
    );
    assert!(b.far_end_bye, "B did not hear A's goodbye: {b:?}");
}

/// Writes a pcap file of UDP datagrams from `from` to `to`, for the dissector.
fn pcap(datagrams: &[Vec<u8>], from: SocketAddr, to: SocketAddr) -> Vec<u8> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (from.ip(), to.ip()) else {
        panic!("IPv4 only")
    };
    let mut out = Vec::new();
    // Global header: magic, version 2.4, zone, sigfigs, snaplen, LINKTYPE_RAW (101).
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&101u32.to_le_bytes());
    for (i, d) in datagrams.iter().enumerate() {
        let udp_len = 8 + d.len();
        let ip_len = 20 + udp_len;
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(ip_len as u32).to_le_bytes());
        out.extend_from_slice(&(ip_len as u32).to_le_bytes());
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        let sum = !ip
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .fold(0u32, |acc, w| {
                let s = acc + w;
                (s & 0xffff) + (s >> 16)
            }) as u16;
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        out.extend_from_slice(&ip);
        out.extend_from_slice(&from.port().to_be_bytes());
        out.extend_from_slice(&to.port().to_be_bytes());
        out.extend_from_slice(&(udp_len as u16).to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(d);
    }
    out
}

#[cfg_attr(not(vigil_has_tshark), ignore = "needs tshark: apt-get install tshark")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wireshark_reads_the_units_reports_as_valid_rtcp() {
    // The far end is a bare pair of sockets that keep what the unit sends to its RTCP port,
    // and send the unit RTP so its reports carry a reception block.
    let unit = Media::bind(LOOPBACK).await.unwrap();
    let unit_addr = unit.local();
    let (far_rtp, far_rtcp) = loop {
        let rtp = tokio::net::UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
        let port = rtp.local_addr().unwrap().port();
        if port % 2 == 0 {
            if let Ok(rtcp) = tokio::net::UdpSocket::bind((LOOPBACK, port + 1)).await {
                break (rtp, rtcp);
            }
        }
    };
    let far = far_rtp.local_addr().unwrap();
    let (port, _) = SimCallPort::new(vec![500; 8000]);
    let (stop_tx, stop) = watch::channel(false);
    let (_agreed_tx, agreed_rx) = watch::channel(agreed(far));
    let (keys, _keys_rx) = mpsc::unbounded_channel();
    let run = tokio::spawn(unit.run(agreed_rx, Box::new(port), stop, keys));
    let feed = tokio::spawn(async move {
        let mut packet = vec![0x80, 8, 0, 0, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];
        packet.extend(std::iter::repeat_n(0xd5u8, 160));
        for i in 0u16..400 {
            packet[2..4].copy_from_slice(&i.to_be_bytes());
            packet[4..8].copy_from_slice(&(u32::from(i) * 160).to_be_bytes());
            // Every tenth packet is lost on the way.
            if i % 10 != 9 {
                let _ = far_rtp.send_to(&packet, unit_addr).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut reports = Vec::new();
    let mut buf = [0u8; 1500];
    let from = SocketAddr::new(LOOPBACK, unit_addr.port() + 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while let Ok(Ok((n, sender))) =
        tokio::time::timeout_at(deadline, far_rtcp.recv_from(&mut buf)).await
    {
        assert_eq!(sender, from, "RTCP from the port after the unit's RTP");
        reports.push(buf[..n].to_vec());
    }
    stop_tx.send_replace(true);
    run.await.unwrap();
    feed.abort();
    let goodbye = tokio::time::timeout(Duration::from_secs(1), far_rtcp.recv_from(&mut buf))
        .await
        .expect("no goodbye report")
        .unwrap();
    reports.push(buf[..goodbye.0].to_vec());
    assert!(reports.len() >= 2, "{} reports in 8 s", reports.len());

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rtcp.pcap");
    let far_rtcp_addr = far_rtcp.local_addr().unwrap();
    std::fs::write(&file, pcap(&reports, from, far_rtcp_addr)).unwrap();
    let out = std::process::Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&file)
        .args(["-d", &format!("udp.port=={},rtcp", far_rtcp_addr.port())])
        .args([
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
        ])
        .args([
            "-e",
            "rtcp.pt",
            "-e",
            "rtcp.sdes.text",
            "-e",
            "rtcp.ssrc.identifier",
        ])
        .args([
            "-e",
            "rtcp.ssrc.cum_nr",
            "-e",
            "_ws.malformed",
            "-e",
            "_ws.expert.severity",
        ])
        .env("HOME", dir.path())
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        reports.len(),
        "tshark read other packets:\n{text}"
    );
    for line in &lines {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f.len(), 6, "{line}");
        let types: Vec<&str> = f[0].split(',').collect();
        assert!(
            types[0] == "200" || types[0] == "201",
            "a report first: {line}"
        );
        assert!(types.contains(&"202"), "SDES in every compound: {line}");
        assert!(f[1].starts_with("vigil-"), "the unit's CNAME: {line}");
        assert!(f[4].is_empty(), "malformed: {line}");
        // Severity 0x00800000 and above are warnings and errors.
        for severity in f[5].split(',').filter(|s| !s.is_empty()) {
            let v = u32::from_str_radix(severity.trim_start_matches("0x"), 16).unwrap_or(u32::MAX);
            assert!(v < 0x0060_0000, "expert warning or error: {line}");
        }
    }
    assert!(
        lines
            .last()
            .unwrap()
            .split('|')
            .next()
            .unwrap()
            .contains("203"),
        "the last report says goodbye: {}",
        lines.last().unwrap()
    );
    // The reception block is about the far end's stream, and counts what was lost.
    let with_block: Vec<&&str> = lines
        .iter()
        .filter(|l| {
            l.split('|')
                .nth(2)
                .is_some_and(|s| s.contains("0xdeadbeef"))
        })
        .collect();
    assert!(
        !with_block.is_empty(),
        "no report on the far end's stream:\n{text}"
    );
    let lost: u32 = with_block
        .last()
        .unwrap()
        .split('|')
        .nth(3)
        .and_then(|s| s.split(',').next_back())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no cumulative loss field:\n{text}"));
    assert!(
        (10..=40).contains(&lost),
        "far end lost {lost} of ~400, every tenth:\n{text}"
    );
}

/// RTCP multiplexed on the RTP port (RFC 5761), as a phone that offered `a=rtcp-mux` and got
/// it in the answer sends and expects it: the far end here is one bare socket (its next port
/// bound too, to catch anything sent the old way). The unit's reports reach that one port and
/// read as RTCP, none go to the next port, the far end's own reports and goodbye sent to the
/// unit's RTP port are read as RTCP (not dropped as bad RTP), and the audio still plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_rtcp_mux_reports_share_the_rtp_port_both_ways() {
    let unit = Media::bind(LOOPBACK).await.unwrap();
    let unit_addr = unit.local();
    let (far, next) = loop {
        let rtp = tokio::net::UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
        let port = rtp.local_addr().unwrap().port();
        if port % 2 == 0 {
            if let Ok(next) = tokio::net::UdpSocket::bind((LOOPBACK, port + 1)).await {
                break (std::sync::Arc::new(rtp), next);
            }
        }
    };
    let far_addr = far.local_addr().unwrap();
    let (port, heard) = SimCallPort::new(vec![500; 8000]);
    let (stop_tx, stop) = watch::channel(false);
    let (_agreed_tx, agreed_rx) = watch::channel(Agreed {
        rtcp_mux: true,
        ..agreed(far_addr)
    });
    let (keys, _keys_rx) = mpsc::unbounded_channel();
    let run = tokio::spawn(unit.run(agreed_rx, Box::new(port), stop, keys));
    // The far end: audio every 20 ms, a sender report at 1 s, a goodbye at 6 s, all to the
    // unit's RTP port.
    let feed = tokio::spawn({
        let far = std::sync::Arc::clone(&far);
        async move {
            let mut packet = vec![0x80, 8, 0, 0, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];
            packet.extend(std::iter::repeat_n(0xd5u8, 160));
            let mut report = Vec::new();
            // Paced by an interval, so the far end's clock does not drift from the unit's.
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            for i in 0u16..300 {
                tick.tick().await;
                packet[2..4].copy_from_slice(&i.to_be_bytes());
                packet[4..8].copy_from_slice(&(u32::from(i) * 160).to_be_bytes());
                let _ = far.send_to(&packet, unit_addr).await;
                if i == 50 || i == 299 {
                    let sent = vigil::voice::rtcp::Sent {
                        packets: u32::from(i) + 1,
                        octets: (u32::from(i) + 1) * 160,
                        rtp_timestamp: u32::from(i) * 160,
                    };
                    vigil::voice::rtcp::write_report(
                        &mut report,
                        0xdead_beef,
                        vigil::voice::rtcp::ntp_from(Duration::from_millis(20 * u64::from(i))),
                        Some(sent),
                        None,
                        "phone@127.0.0.1",
                        i == 299,
                    );
                    let _ = far.send_to(&report, unit_addr).await;
                }
            }
        }
    });
    let (mut rtcp_seen, mut rtp_seen) = (0, 0);
    let mut buf = [0u8; 1500];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(7);
    while let Ok(Ok((n, sender))) = tokio::time::timeout_at(deadline, far.recv_from(&mut buf)).await
    {
        assert_eq!(sender, unit_addr, "everything from the unit's RTP port");
        let data = &buf[..n];
        if (192..=223).contains(&data[1]) {
            vigil::voice::rtcp::parse(data).expect("the unit's muxed report is valid RTCP");
            rtcp_seen += 1;
        } else {
            rtp_seen += 1;
        }
    }
    let _ = feed.await;
    stop_tx.send_replace(true);
    let stats = run.await.unwrap();
    assert!(rtcp_seen >= 1, "no report on the RTP port ({rtp_seen} RTP)");
    assert!(rtp_seen >= 200, "only {rtp_seen} RTP packets");
    let mut probe = [0u8; 1500];
    assert!(
        tokio::time::timeout(Duration::from_millis(200), next.recv_from(&mut probe))
            .await
            .is_err(),
        "RTCP went to the next port although multiplexed"
    );
    assert!(stats.rtcp_received >= 2, "{stats:?}");
    assert!(
        stats.far_end_bye,
        "the goodbye on the RTP port was not heard: {stats:?}"
    );
    assert_eq!(stats.dropped, 0, "RTCP taken as bad RTP: {stats:?}");
    assert!(stats.received >= 200, "{stats:?}");
    assert!(!heard.lock().unwrap().is_empty());
}

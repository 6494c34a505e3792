//! The RFC 4475 torture messages, byte for byte, each in its own file under `messages/`: CRLF
//! line ends, non-printable and non-ASCII octets as they are on the wire, the RFC's
//! `<allOneLine>` and `<repeat>` notations expanded. The files are data, kept out of text
//! normalisation by `.gitattributes` so that no checkout changes an octet. Every Content-Length
//! was checked against its body: they agree, except where the RFC itself makes them disagree
//! (`clerr`, `mcl01`, `dblreq`'s trailing request, and `multi01`, whose `l: 154` announces two
//! octets more than its body holds).

/// RFC 4475 §3.1.1.1, A Short Tortuous INVITE (`wsinv`).
pub(super) const WSINV: &[u8] = include_bytes!("messages/wsinv.sip");

/// RFC 4475 §3.1.1.2, Wide Range of Valid Characters (`intmeth`).
pub(super) const INTMETH: &[u8] = include_bytes!("messages/intmeth.sip");

/// RFC 4475 §3.1.1.3, Valid Use of the % Escaping Mechanism (`esc01`).
pub(super) const ESC01: &[u8] = include_bytes!("messages/esc01.sip");

/// RFC 4475 §3.1.1.4, Escaped Nulls in URIs (`escnull`).
pub(super) const ESCNULL: &[u8] = include_bytes!("messages/escnull.sip");

/// RFC 4475 §3.1.1.5, Use of % When It Is Not an Escape (`esc02`).
pub(super) const ESC02: &[u8] = include_bytes!("messages/esc02.sip");

/// RFC 4475 §3.1.1.6, Message with No LWS between Display Name and < (`lwsdisp`).
pub(super) const LWSDISP: &[u8] = include_bytes!("messages/lwsdisp.sip");

/// RFC 4475 §3.1.1.7, Long Values in Header Fields (`longreq`).
pub(super) const LONGREQ: &[u8] = include_bytes!("messages/longreq.sip");

/// RFC 4475 §3.1.1.8, Extra Trailing Octets in a UDP Datagram (`dblreq`).
pub(super) const DBLREQ: &[u8] = include_bytes!("messages/dblreq.sip");

/// RFC 4475 §3.1.1.9, Semicolon-Separated Parameters in URI User Part (`semiuri`).
pub(super) const SEMIURI: &[u8] = include_bytes!("messages/semiuri.sip");

/// RFC 4475 §3.1.1.10, Varied and Unknown Transport Types (`transports`).
pub(super) const TRANSPORTS: &[u8] = include_bytes!("messages/transports.sip");

/// RFC 4475 §3.1.1.11, Multipart MIME Message (`mpart01`).
pub(super) const MPART01: &[u8] = include_bytes!("messages/mpart01.sip");

/// RFC 4475 §3.1.1.12, Unusual Reason Phrase (`unreason`).
pub(super) const UNREASON: &[u8] = include_bytes!("messages/unreason.sip");

/// RFC 4475 §3.1.1.13, Empty Reason Phrase (`noreason`).
pub(super) const NOREASON: &[u8] = include_bytes!("messages/noreason.sip");

/// RFC 4475 §3.1.2.1, Extraneous Header Field Separators (`badinv01`).
pub(super) const BADINV01: &[u8] = include_bytes!("messages/badinv01.sip");

/// RFC 4475 §3.1.2.2, Content Length Larger Than Message (`clerr`).
pub(super) const CLERR: &[u8] = include_bytes!("messages/clerr.sip");

/// RFC 4475 §3.1.2.3, Negative Content-Length (`ncl`).
pub(super) const NCL: &[u8] = include_bytes!("messages/ncl.sip");

/// RFC 4475 §3.1.2.4, Request Scalar Fields with Overlarge Values (`scalar02`).
pub(super) const SCALAR02: &[u8] = include_bytes!("messages/scalar02.sip");

/// RFC 4475 §3.1.2.5, Response Scalar Fields with Overlarge Values (`scalarlg`).
pub(super) const SCALARLG: &[u8] = include_bytes!("messages/scalarlg.sip");

/// RFC 4475 §3.1.2.6, Unterminated Quoted String in Display Name (`quotbal`).
pub(super) const QUOTBAL: &[u8] = include_bytes!("messages/quotbal.sip");

/// RFC 4475 §3.1.2.7, <> Enclosing Request-URI (`ltgtruri`).
pub(super) const LTGTRURI: &[u8] = include_bytes!("messages/ltgtruri.sip");

/// RFC 4475 §3.1.2.8, Malformed SIP Request-URI (embedded LWS) (`lwsruri`).
pub(super) const LWSRURI: &[u8] = include_bytes!("messages/lwsruri.sip");

/// RFC 4475 §3.1.2.9, Multiple SP Separating Request-Line Elements (`lwsstart`).
pub(super) const LWSSTART: &[u8] = include_bytes!("messages/lwsstart.sip");

/// RFC 4475 §3.1.2.10, SP Characters at End of Request-Line (`trws`).
pub(super) const TRWS: &[u8] = include_bytes!("messages/trws.sip");

/// RFC 4475 §3.1.2.11, Escaped Headers in SIP Request-URI (`escruri`).
pub(super) const ESCRURI: &[u8] = include_bytes!("messages/escruri.sip");

/// RFC 4475 §3.1.2.12, Invalid Time Zone in Date Header Field (`baddate`).
pub(super) const BADDATE: &[u8] = include_bytes!("messages/baddate.sip");

/// RFC 4475 §3.1.2.13, Failure to Enclose name-addr URI in <> (`regbadct`).
pub(super) const REGBADCT: &[u8] = include_bytes!("messages/regbadct.sip");

/// RFC 4475 §3.1.2.14, Spaces within addr-spec (`badaspec`).
pub(super) const BADASPEC: &[u8] = include_bytes!("messages/badaspec.sip");

/// RFC 4475 §3.1.2.15, Non-token Characters in Display Name (`baddn`).
pub(super) const BADDN: &[u8] = include_bytes!("messages/baddn.sip");

/// RFC 4475 §3.1.2.16, Unknown Protocol Version (`badvers`).
pub(super) const BADVERS: &[u8] = include_bytes!("messages/badvers.sip");

/// RFC 4475 §3.1.2.17, Start Line and CSeq Method Mismatch (`mismatch01`).
pub(super) const MISMATCH01: &[u8] = include_bytes!("messages/mismatch01.sip");

/// RFC 4475 §3.1.2.18, Unknown Method with CSeq Method Mismatch (`mismatch02`).
pub(super) const MISMATCH02: &[u8] = include_bytes!("messages/mismatch02.sip");

/// RFC 4475 §3.1.2.19, Overlarge Response Code (`bigcode`).
pub(super) const BIGCODE: &[u8] = include_bytes!("messages/bigcode.sip");

/// RFC 4475 §3.2.1, Missing Transaction Identifier (`badbranch`).
pub(super) const BADBRANCH: &[u8] = include_bytes!("messages/badbranch.sip");

/// RFC 4475 §3.3.1, Missing Required Header Fields (`insuf`).
pub(super) const INSUF: &[u8] = include_bytes!("messages/insuf.sip");

/// RFC 4475 §3.3.2, Request-URI with Unknown Scheme (`unkscm`).
pub(super) const UNKSCM: &[u8] = include_bytes!("messages/unkscm.sip");

/// RFC 4475 §3.3.3, Request-URI with Known but Atypical Scheme (`novelsc`).
pub(super) const NOVELSC: &[u8] = include_bytes!("messages/novelsc.sip");

/// RFC 4475 §3.3.4, Unknown URI Schemes in Header Fields (`unksm2`).
pub(super) const UNKSM2: &[u8] = include_bytes!("messages/unksm2.sip");

/// RFC 4475 §3.3.5, Proxy-Require and Require (`bext01`).
pub(super) const BEXT01: &[u8] = include_bytes!("messages/bext01.sip");

/// RFC 4475 §3.3.6, Unknown Content-Type (`invut`).
pub(super) const INVUT: &[u8] = include_bytes!("messages/invut.sip");

/// RFC 4475 §3.3.7, Unknown Authorization Scheme (`regaut01`).
pub(super) const REGAUT01: &[u8] = include_bytes!("messages/regaut01.sip");

/// RFC 4475 §3.3.8, Multiple Values in Single Value Required Fields (`multi01`).
pub(super) const MULTI01: &[u8] = include_bytes!("messages/multi01.sip");

/// RFC 4475 §3.3.9, Multiple Content-Length Values (`mcl01`).
pub(super) const MCL01: &[u8] = include_bytes!("messages/mcl01.sip");

/// RFC 4475 §3.3.10, 200 OK Response with Broadcast Via Header Field Value (`bcast`).
pub(super) const BCAST: &[u8] = include_bytes!("messages/bcast.sip");

/// RFC 4475 §3.3.11, Max-Forwards of Zero (`zeromf`).
pub(super) const ZEROMF: &[u8] = include_bytes!("messages/zeromf.sip");

/// RFC 4475 §3.3.12, REGISTER with a Contact Header Parameter (`cparam01`).
pub(super) const CPARAM01: &[u8] = include_bytes!("messages/cparam01.sip");

/// RFC 4475 §3.3.13, REGISTER with a URL Parameter (`cparam02`).
pub(super) const CPARAM02: &[u8] = include_bytes!("messages/cparam02.sip");

/// RFC 4475 §3.3.14, REGISTER with a URL Escaped Header (`regescrt`).
pub(super) const REGESCRT: &[u8] = include_bytes!("messages/regescrt.sip");

/// RFC 4475 §3.3.15, Unacceptable Accept Offering (`sdp01`).
pub(super) const SDP01: &[u8] = include_bytes!("messages/sdp01.sip");

/// RFC 4475 §3.4.1, INVITE with RFC 2543 Syntax (`inv2543`).
pub(super) const INV2543: &[u8] = include_bytes!("messages/inv2543.sip");

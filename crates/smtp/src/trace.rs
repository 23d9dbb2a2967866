//! The `Received:` trace header (RFC 5321 §4.4) as every door that puts mail on the queue writes it:
//! SMTP submission and delivery in smtp-ingress, and JMAP's EmailSubmission in the http role.

use std::net::IpAddr;

/// What a `Received:` line says about how a message came in.
#[derive(Debug, Clone)]
pub struct Received<'a> {
    /// The name the client gave (EHLO), or what stands for it.
    pub helo: &'a str,
    pub client: IpAddr,
    /// The TLS version and cipher, if the session was encrypted.
    pub tls: Option<(&'a str, &'a str)>,
    /// The authenticated sender, if any.
    pub authenticated: Option<&'a str>,
    /// Our host name.
    pub by: &'a str,
    /// The protocol (RFC 3848: ESMTPSA…; `HTTP`/`HTTPS` for JMAP).
    pub with: &'a str,
    /// The queue id.
    pub id: &'a str,
    /// All recipients: `for` is written only when there is exactly one, so one copy does not reveal the
    /// others (Bcc).
    pub recipients: &'a [&'a str],
    /// RFC 5322 date-time.
    pub date: &'a str,
}

impl Received<'_> {
    /// `Received: from <helo> ([ip]) (using <TLS> with cipher <c>) (Authenticated sender: <a>) by <host>
    /// (mailbus) with <protocol> id <queue id> for <rcpt>; <date>`, folded as Postfix folds it.
    pub fn header(&self) -> String {
        let helo: String = self.helo.chars().filter(|c| !c.is_control()).collect();
        let ip = match self.client {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("IPv6:{ip}"),
        };
        let mut header = format!("Received: from {helo} ([{ip}])\r\n");
        if let Some((version, cipher)) = self.tls {
            header.push_str(&format!("\t(using {version} with cipher {cipher})\r\n"));
        }
        if let Some(user) = self.authenticated {
            header.push_str(&format!("\t(Authenticated sender: {user})\r\n"));
        }
        header.push_str(&format!("\tby {} (mailbus) with {} id {}", self.by, self.with, self.id));
        if let [only] = self.recipients {
            header.push_str(&format!("\r\n\tfor <{only}>"));
        }
        header.push_str(&format!(";\r\n\t{}\r\n", self.date));
        header
    }
}

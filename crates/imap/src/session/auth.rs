//! The not-authenticated state's commands: CAPABILITY's list, STARTTLS, LOGIN and AUTHENTICATE PLAIN
//! (RFC 9051 §6.2, RFC 4616), and ENABLE's CONDSTORE implied by a command (RFC 7162 §3.1).

use super::*;

impl<S: Store, W: Wire> Session<S, W> {
    pub(super) fn capabilities(&self) -> Vec1<Capability<'static>> {
        // IMAP4rev1 first: `spell_imap4rev1` finds it there.
        let mut caps = vec![Capability::Imap4Rev1, Capability::LiteralPlus, Capability::SaslIr, Capability::Idle];
        caps.push(Capability::from(atom("IMAP4rev2")));
        caps.extend(["ID", "ENABLE", "NAMESPACE"].map(|c| Capability::from(atom(c))));
        match &self.state {
            State::NotAuthenticated { .. } => {
                if !self.tls && !self.compressed {
                    caps.push(Capability::StartTls);
                }
                if self.tls || self.config.plaintext_allowed {
                    caps.push(Capability::Auth(AuthMechanism::Plain));
                } else {
                    caps.push(Capability::LoginDisabled);
                }
            }
            _ => {
                caps.extend([Capability::UidPlus, Capability::Move, Capability::Unselect, Capability::Binary]);
                caps.extend(
                    [
                        "CHILDREN",
                        "SPECIAL-USE",
                        "CONDSTORE",
                        "QRESYNC",
                        "STATUS=SIZE",
                        "UTF8=ACCEPT",
                        "ESEARCH",
                        "LIST-EXTENDED",
                        "LIST-STATUS",
                        "OBJECTID",
                        "THREAD=REFERENCES",
                        "THREAD=ORDEREDSUBJECT",
                        "SORT",
                        "SORT=DISPLAY",
                        "ESORT",
                        "CONTEXT=SEARCH",
                        "CONTEXT=SORT",
                        "UNAUTHENTICATE",
                        "PREVIEW",
                        "CREATE-SPECIAL-USE",
                        "WITHIN",
                        "SEARCHRES",
                        "SAVEDATE",
                        "NOTIFY",
                        "MULTIAPPEND",
                        "CATENATE",
                    ]
                    .map(|c| Capability::from(atom(c))),
                );
                caps.extend(["QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE"].map(|c| Capability::from(atom(c))));
                caps.push(Capability::from(atom(&format!("APPENDLIMIT={}", self.config.max_message_size))));
                // RFC 4978: offered once logged in (see `compress`).
                caps.push(Capability::Compress {
                    algorithm: imap_types::extensions::compress::CompressionAlgorithm::Deflate,
                });
            }
        }
        Vec1::try_from(caps).expect("never empty")
    }

    pub(super) async fn authenticate_start(&mut self, command: CommandAuthenticate) -> Flow {
        let CommandAuthenticate { tag, mechanism, initial_response } = command;
        let refused = match &self.state {
            State::NotAuthenticated { .. } if !self.tls && !self.config.plaintext_allowed => {
                Some(no(tag.clone(), Some(other_code("PRIVACYREQUIRED")), "use STARTTLS first"))
            }
            State::NotAuthenticated { .. } if mechanism != AuthMechanism::Plain => {
                Some(no(tag.clone(), Some(other_code("CANNOT")), "only AUTHENTICATE PLAIN is offered"))
            }
            State::NotAuthenticated { .. } => None,
            _ => Some(bad(Some(tag.clone()), "already authenticated")),
        };
        if let Some(status) = refused {
            let _ = self.server.authenticate_finish(status);
            return Flow::Continue;
        }
        match initial_response {
            Some(response) => match self.plain(tag, response.declassify()).await {
                Ok(status) => {
                    let _ = self.server.authenticate_finish(status);
                    Flow::Continue
                }
                Err(flow) => flow,
            },
            None => {
                let _ = self.server.authenticate_continue(CommandContinuationRequest::base64(Vec::<u8>::new()));
                self.mode = Mode::Authenticating(tag);
                Flow::Continue
            }
        }
    }

    /// SASL PLAIN (RFC 4616), as SMTP and POP3 read it: an authzid other than the user is refused.
    pub(super) async fn plain(&mut self, tag: Tag<'static>, response: &[u8]) -> Result<Status<'static>, Flow> {
        match mailbus_sasl::parse_plain_checked(response) {
            Ok(plain) => self.log_in(tag, &plain.username, plain.password.expose()).await,
            Err(PlainError::Malformed) => Ok(bad(Some(tag), "malformed PLAIN response")),
            Err(PlainError::ActsForAnother) => {
                Ok(no(tag, Some(other_code("AUTHORIZATIONFAILED")), "cannot act as another user"))
            }
        }
    }

    pub(super) async fn log_in(
        &mut self,
        tag: Tag<'static>,
        user: &str,
        password: &str,
    ) -> Result<Status<'static>, Flow> {
        let (account_id, address, lease) = match self.store.log_in(user, password).await {
            LoginOutcome::Accepted { account_id, address, lease } => (account_id, address, lease),
            LoginOutcome::Rejected => return self.login_failed(tag).await,
            LoginOutcome::Throttled => {
                return Ok(no(
                    tag,
                    Some(other_code("UNAVAILABLE")),
                    "too many failed logins from your address, try later",
                ));
            }
            LoginOutcome::TooManyConnections => {
                return Ok(no(
                    tag,
                    Some(other_code("LIMIT")),
                    "too many connections for this account from this address",
                ));
            }
            LoginOutcome::NotReady => return Ok(no(tag, Some(other_code("UNAVAILABLE")), "try again later")),
            LoginOutcome::Failed(error) => return Ok(refusal(tag, &error)),
        };
        self.state =
            State::Authenticated(Login { account_id, address, enabled: Enabled::default(), notify: None, lease });
        Ok(ok(tag, Some(Code::Capability(self.capabilities())), "logged in"))
    }

    /// A wrong user name or password (the store has already made the client wait): NO, and once this
    /// session has had its share of failures, BYE.
    pub(super) async fn login_failed(&mut self, tag: Tag<'static>) -> Result<Status<'static>, Flow> {
        let State::NotAuthenticated { failures } = &mut self.state else {
            return Ok(bad(Some(tag), "already authenticated"));
        };
        *failures += 1;
        if *failures >= self.config.max_auth_failures {
            self.server.enqueue_status(no(tag, Some(other_code("AUTHENTICATIONFAILED")), "authentication failed"));
            self.server.enqueue_status(Status::bye(None, "too many authentication failures").expect("ASCII"));
            self.drain().await;
            return Err(Flow::Close);
        }
        Ok(no(tag, Some(other_code("AUTHENTICATIONFAILED")), "authentication failed"))
    }

    /// RFC 7162 §3.1: a command other than SELECT or ENABLE that turns CONDSTORE on (FETCH or SEARCH with
    /// MODSEQ, STORE with UNCHANGEDSINCE) is answered with the selected mailbox's HIGHESTMODSEQ first, the
    /// first time, since the client never heard it as a CONDSTORE client.
    pub(super) fn enable_condstore(&mut self) {
        let Some(login) = self.state.login_mut() else { return };
        if std::mem::replace(&mut login.enabled.condstore, true) {
            return;
        }
        if let Some(modseq) = self.state.selected().and_then(|s| NonZeroU64::new(s.highest_modseq)) {
            let status = Status::ok(None, Some(Code::HighestModSeq(modseq)), "highest").expect("ASCII");
            self.server.enqueue_status(status);
        }
    }

    /// RFC 9051 §6.2.1: the go-ahead goes out in the clear; the connection then drops anything the client
    /// sent after STARTTLS unread, handshakes, and calls [`Session::tls_started`] for a fresh framer.
    pub(super) async fn start_tls(&mut self, tag: Tag<'static>) -> Flow {
        self.server.enqueue_status(ok(tag, None, "begin TLS negotiation now"));
        self.drain().await;
        Flow::StartTls
    }
}

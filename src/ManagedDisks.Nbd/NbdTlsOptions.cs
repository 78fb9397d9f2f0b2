using System.Security.Cryptography.X509Certificates;

namespace ManagedDisks.Nbd;

public enum TlsMode
{
    /// <summary>STARTTLS is refused with ERR_POLICY.</summary>
    Off,
    /// <summary>Clients may upgrade with STARTTLS or stay in plain text.</summary>
    Allow,
    /// <summary>Everything but STARTTLS and ABORT gets ERR_TLS_REQD until TLS is up (FORCEDTLS).</summary>
    Require,
}

/// <summary>NBD over TLS: the server certificate and, optionally, the CA that client certificates must chain to.</summary>
public sealed record NbdTlsOptions(TlsMode Mode, X509Certificate2? Certificate, X509Certificate2Collection? ClientCa);

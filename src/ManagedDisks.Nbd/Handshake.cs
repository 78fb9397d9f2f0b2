using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using ManagedDisks.Nbd.Wire;
using Microsoft.Extensions.Logging;

namespace ManagedDisks.Nbd;

/// <summary>What option negotiation settled, handed to the transmission phase.</summary>
internal sealed record Session(NbdExport Export, bool StructuredReplies, bool BaseAllocationSelected, TransmissionFlags Flags);

/// <summary>
/// Fixed-newstyle option negotiation. Every option's data is consumed in full and answered
/// with exactly one final reply, whatever went wrong with it (nbd-server's LIST bug), so a
/// client can always send the next option. Violations of a MUST end the connection.
/// </summary>
internal sealed class Handshake(ConnectionStreams streams, IExportCatalog catalog, NbdTlsOptions tls, ILogger logger, string peer)
{
    private const ClientFlags KnownClientFlags = ClientFlags.FixedNewstyle | ClientFlags.NoZeroes;

    private bool _noZeroes;
    private bool _fixedNewstyle;
    private bool _structuredReplies;
    private string? _metaContextExport;
    private bool _baseAllocationSelected;
    private bool _tlsActive;

    /// <summary>Returns the session, or null when the connection must close.</summary>
    public async Task<Session?> RunAsync(CancellationToken cancellationToken)
    {
        var greeting = new byte[18];
        BinaryPrimitives.WriteUInt64BigEndian(greeting, NbdMagic.InitPasswd);
        BinaryPrimitives.WriteUInt64BigEndian(greeting.AsSpan(8), NbdMagic.IHaveOpt);
        BinaryPrimitives.WriteUInt16BigEndian(greeting.AsSpan(16), (ushort)(HandshakeFlags.FixedNewstyle | HandshakeFlags.NoZeroes));
        await streams.Output.SendAsync(greeting).ConfigureAwait(false);

        uint clientFlags = 0;
        if (!await ReadFrameAsync((in ReadOnlySequence<byte> b, out SequencePosition c) =>
                OptionParser.TryParseClientFlags(b, out clientFlags, out c), cancellationToken).ConfigureAwait(false))
            return null;
        if ((clientFlags & ~(uint)KnownClientFlags) != 0)
        {
            NbdLog.BadClientFlags(logger, peer, clientFlags);
            return null;
        }
        _noZeroes = (clientFlags & (uint)ClientFlags.NoZeroes) != 0;
        // A plain (non-fixed) newstyle client can only send EXPORT_NAME: it cannot read option replies.
        _fixedNewstyle = (clientFlags & (uint)ClientFlags.FixedNewstyle) != 0;

        while (true)
        {
            uint option = 0;
            byte[] data = [];
            ParseStatus status = ParseStatus.NeedMoreData;
            bool framed = await ReadFrameAsync((in ReadOnlySequence<byte> b, out SequencePosition c) =>
            {
                status = OptionParser.TryParseOption(b, NbdLimits.MaxOptionLength, out option, out var payload, out c);
                if (status == ParseStatus.Complete) data = payload.ToArray();
                return status;
            }, cancellationToken).ConfigureAwait(false);
            if (!framed)
            {
                if (status == ParseStatus.BadMagic) NbdLog.BadOptionMagic(logger, peer);
                if (status == ParseStatus.PayloadTooLarge) NbdLog.OptionTooLong(logger, peer, option);
                return null;
            }

            if (!_fixedNewstyle && (NbdOption)option != NbdOption.ExportName)
            {
                NbdLog.NonFixedOption(logger, peer, option);
                return null;
            }
            if (tls.Mode == TlsMode.Require && !_tlsActive && (NbdOption)option is not (NbdOption.StartTls or NbdOption.Abort))
            {
                // FORCEDTLS: nothing is said in clear text; EXPORT_NAME has no error reply, so it is a hang-up.
                if ((NbdOption)option == NbdOption.ExportName) return null;
                await ErrorAsync(option, OptionReplyType.ErrTlsReqd, "this server requires TLS: send NBD_OPT_STARTTLS first").ConfigureAwait(false);
                continue;
            }
            var outcome = await HandleOptionAsync(option, data).ConfigureAwait(false);
            if (outcome.Close || streams.Output.IsBroken) return null;
            if (outcome.Session is not null) return outcome.Session;
        }
    }

    private delegate ParseStatus FrameParser(in ReadOnlySequence<byte> buffer, out SequencePosition consumed);

    /// <summary>Reads until <paramref name="parse"/> completes; false on EOF or a framing error.</summary>
    private async Task<bool> ReadFrameAsync(FrameParser parse, CancellationToken cancellationToken)
    {
        while (true)
        {
            ReadResult result = await streams.Input.ReadAsync(cancellationToken).ConfigureAwait(false);
            ReadOnlySequence<byte> buffer = result.Buffer;
            ParseStatus status = parse(buffer, out SequencePosition consumed);
            if (status == ParseStatus.Complete)
            {
                streams.Input.AdvanceTo(consumed);
                return true;
            }
            streams.Input.AdvanceTo(buffer.Start, buffer.End);
            if (status != ParseStatus.NeedMoreData || result.IsCompleted || result.IsCanceled) return false;
        }
    }

    private readonly record struct Outcome(bool Close, Session? Session)
    {
        public static readonly Outcome Continue = new(false, null);
        public static readonly Outcome Hangup = new(true, null);
    }

    private async Task<Outcome> HandleOptionAsync(uint option, byte[] data)
    {
        switch ((NbdOption)option)
        {
            case NbdOption.ExportName:
                return HandleExportName(data) is { } session ? await EnterWithExportNameAsync(session).ConfigureAwait(false) : Outcome.Hangup;
            case NbdOption.Abort:
                await ReplyAsync(option, OptionReplyType.Ack).ConfigureAwait(false);
                return Outcome.Hangup;
            case NbdOption.List:
                await HandleListAsync(option, data).ConfigureAwait(false);
                return Outcome.Continue;
            case NbdOption.StartTls:
                return await HandleStartTlsAsync(option, data).ConfigureAwait(false);
            case NbdOption.Info:
            case NbdOption.Go:
                return await HandleInfoOrGoAsync(option, data).ConfigureAwait(false);
            case NbdOption.StructuredReply:
                if (data.Length != 0) await ErrorAsync(option, OptionReplyType.ErrInvalid, "STRUCTURED_REPLY takes no data").ConfigureAwait(false);
                else if (_structuredReplies) await ErrorAsync(option, OptionReplyType.ErrInvalid, "structured replies are already negotiated").ConfigureAwait(false);
                else
                {
                    _structuredReplies = true;
                    await ReplyAsync(option, OptionReplyType.Ack).ConfigureAwait(false);
                }
                return Outcome.Continue;
            case NbdOption.ListMetaContext:
            case NbdOption.SetMetaContext:
                await HandleMetaContextAsync(option, data).ConfigureAwait(false);
                return Outcome.Continue;
            default:
                await ErrorAsync(option, OptionReplyType.ErrUnsup, $"option {option} is not supported").ConfigureAwait(false);
                return Outcome.Continue;
        }
    }

    private async Task<Outcome> HandleStartTlsAsync(uint option, byte[] data)
    {
        if (tls.Mode == TlsMode.Off || tls.Certificate is null)
        {
            await ErrorAsync(option, OptionReplyType.ErrPolicy, "TLS is not enabled on this server").ConfigureAwait(false);
            return Outcome.Continue;
        }
        if (_tlsActive)
        {
            await ErrorAsync(option, OptionReplyType.ErrInvalid, "TLS is already active").ConfigureAwait(false);
            return Outcome.Continue;
        }
        if (data.Length != 0)
        {
            await ErrorAsync(option, OptionReplyType.ErrInvalid, "STARTTLS takes no data").ConfigureAwait(false);
            return Outcome.Continue;
        }
        await ReplyAsync(option, OptionReplyType.Ack).ConfigureAwait(false);

        // Bytes already buffered after STARTTLS were sent in clear text before the handshake:
        // only an attacker injects those, so the connection ends.
        if (streams.Input.TryRead(out var pending))
        {
            bool injected = !pending.Buffer.IsEmpty;
            streams.Input.AdvanceTo(pending.Buffer.Start);
            if (injected)
            {
                NbdLog.TlsInjection(logger, peer);
                return Outcome.Hangup;
            }
        }

        var secure = new SslStream(streams.Transport, leaveInnerStreamOpen: false, ValidateClientCertificate);
        await secure.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
        {
            ServerCertificate = tls.Certificate,
            ClientCertificateRequired = tls.ClientCa is not null,
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        }).ConfigureAwait(false);
        await streams.UpgradeAsync(secure).ConfigureAwait(false);

        // Everything negotiated in clear text is forgotten (nbdkit CVE-2021-3716).
        _tlsActive = true;
        _structuredReplies = false;
        _metaContextExport = null;
        _baseAllocationSelected = false;
        NbdLog.TlsStarted(logger, peer, secure.SslProtocol.ToString());
        return Outcome.Continue;
    }

    /// <summary>With a client CA configured, a client certificate must chain to it (and only to it).</summary>
    private bool ValidateClientCertificate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (tls.ClientCa is null) return true;
        if (certificate is null) return false;
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(tls.ClientCa);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        bool valid = custom.Build(new X509Certificate2(certificate));
        if (!valid) NbdLog.ClientCertificateRejected(logger, peer, certificate.Subject);
        return valid;
    }

    private Session? HandleExportName(byte[] data)
    {
        // EXPORT_NAME has no error reply: an unknown export can only be refused by hanging up.
        if (data.Length > NbdLimits.MaxString || !WireStrings.TryDecode(data, out string name))
        {
            NbdLog.ExportRefused(logger, peer, "(malformed name)");
            return null;
        }
        var export = catalog.Find(name);
        if (export is null)
        {
            NbdLog.ExportRefused(logger, peer, WireStrings.Quote(name));
            return null;
        }
        return NewSession(export);
    }

    private async Task<Outcome> EnterWithExportNameAsync(Session session)
    {
        var reply = new byte[_noZeroes ? 10 : 134];
        BinaryPrimitives.WriteUInt64BigEndian(reply, (ulong)session.Export.Device.Size);
        BinaryPrimitives.WriteUInt16BigEndian(reply.AsSpan(8), (ushort)session.Flags);
        await streams.Output.SendAsync(reply).ConfigureAwait(false);
        return new Outcome(false, session);
    }

    private Session NewSession(NbdExport export)
    {
        // A context selected for another export does not carry over (nbdkit 20b8509a).
        bool baseAllocation = _baseAllocationSelected && _metaContextExport == export.Name;
        return new Session(export, _structuredReplies, baseAllocation, ExportFlags.For(export.Device.Capabilities, _structuredReplies));
    }

    private async Task HandleListAsync(uint option, byte[] data)
    {
        if (data.Length != 0)
        {
            await ErrorAsync(option, OptionReplyType.ErrInvalid, "LIST takes no data").ConfigureAwait(false);
            return;
        }
        foreach (var export in catalog.List())
        {
            byte[] name = Encoding.UTF8.GetBytes(export.Name);
            byte[] description = Encoding.UTF8.GetBytes(export.Description);
            var payload = new byte[4 + name.Length + description.Length];
            BinaryPrimitives.WriteUInt32BigEndian(payload, (uint)name.Length);
            name.CopyTo(payload, 4);
            description.CopyTo(payload, 4 + name.Length);
            await ReplyAsync(option, OptionReplyType.Server, payload).ConfigureAwait(false);
        }
        await ReplyAsync(option, OptionReplyType.Ack).ConfigureAwait(false);
    }

    private async Task<Outcome> HandleInfoOrGoAsync(uint option, byte[] data)
    {
        var request = ExportInfoRequest.TryDecode(data, out string? error);
        if (request is null)
        {
            await ErrorAsync(option, OptionReplyType.ErrInvalid, error!).ConfigureAwait(false);
            return Outcome.Continue;
        }
        var export = catalog.Find(request.ExportName);
        if (export is null)
        {
            if (catalog.RefusalFor(request.ExportName) is { } refusal)
            {
                NbdLog.ExportRefusedByPolicy(logger, peer, WireStrings.Quote(request.ExportName), refusal);
                await ErrorAsync(option, OptionReplyType.ErrPolicy, refusal).ConfigureAwait(false);
            }
            else await ErrorAsync(option, OptionReplyType.ErrUnknown, $"no export named {WireStrings.Quote(request.ExportName)}; NBD_OPT_LIST shows the exports").ConfigureAwait(false);
            return Outcome.Continue;
        }

        var session = NewSession(export);
        var caps = export.Device.Capabilities;

        var info = new byte[12];
        BinaryPrimitives.WriteUInt16BigEndian(info, (ushort)InfoType.Export);
        BinaryPrimitives.WriteUInt64BigEndian(info.AsSpan(2), (ulong)export.Device.Size);
        BinaryPrimitives.WriteUInt16BigEndian(info.AsSpan(10), (ushort)session.Flags);
        await ReplyAsync(option, OptionReplyType.Info, info).ConfigureAwait(false);

        if (request.Requests.Contains(InfoType.Name))
            await ReplyAsync(option, OptionReplyType.Info, InfoString(InfoType.Name, export.Name)).ConfigureAwait(false);
        if (request.Requests.Contains(InfoType.Description) && export.Description.Length > 0)
            await ReplyAsync(option, OptionReplyType.Info, InfoString(InfoType.Description, export.Description)).ConfigureAwait(false);

        // Sent whether asked or not: clients that do not ask still benefit, and the spec says SHOULD.
        var blockSize = new byte[14];
        BinaryPrimitives.WriteUInt16BigEndian(blockSize, (ushort)InfoType.BlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(2), caps.MinimumBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(6), Math.Max(caps.PreferredBlockSize, caps.MinimumBlockSize));
        BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(10), caps.MaximumPayload);
        await ReplyAsync(option, OptionReplyType.Info, blockSize).ConfigureAwait(false);

        await ReplyAsync(option, OptionReplyType.Ack).ConfigureAwait(false);
        return (NbdOption)option == NbdOption.Go ? new Outcome(false, session) : Outcome.Continue;
    }

    private static byte[] InfoString(InfoType type, string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        var payload = new byte[2 + bytes.Length];
        BinaryPrimitives.WriteUInt16BigEndian(payload, (ushort)type);
        bytes.CopyTo(payload, 2);
        return payload;
    }

    private async Task HandleMetaContextAsync(uint option, byte[] data)
    {
        bool set = (NbdOption)option == NbdOption.SetMetaContext;
        if (set)
        {
            // Each SET replaces the previous selection, even when it fails.
            _baseAllocationSelected = false;
            _metaContextExport = null;
        }
        var request = MetaContextRequest.TryDecode(data, out string? error);
        if (request is null)
        {
            await ErrorAsync(option, OptionReplyType.ErrInvalid, error!).ConfigureAwait(false);
            return;
        }
        if (set && !_structuredReplies)
        {
            await ErrorAsync(option, OptionReplyType.ErrInvalid, "negotiate structured replies before SET_META_CONTEXT").ConfigureAwait(false);
            return;
        }
        if (catalog.Find(request.ExportName) is null)
        {
            await ErrorAsync(option, OptionReplyType.ErrUnknown, $"no export named {WireStrings.Quote(request.ExportName)}").ConfigureAwait(false);
            return;
        }

        // base:allocation is our only context. LIST with no query, or with the bare "base:"
        // namespace, lists it; unknown namespaces and leaves are ignored, as the spec requires.
        bool matches = set
            ? request.Queries.Contains(NbdLimits.BaseAllocation)
            : request.Queries.Count == 0 || request.Queries.Any(q => q is NbdLimits.BaseAllocation or "base:");
        if (matches)
        {
            byte[] name = Encoding.UTF8.GetBytes(NbdLimits.BaseAllocation);
            var payload = new byte[4 + name.Length];
            BinaryPrimitives.WriteUInt32BigEndian(payload, set ? NbdLimits.BaseAllocationId : 0);
            name.CopyTo(payload, 4);
            await ReplyAsync(option, OptionReplyType.MetaContext, payload).ConfigureAwait(false);
        }
        if (set)
        {
            _baseAllocationSelected = matches;
            _metaContextExport = request.ExportName;
        }
        await ReplyAsync(option, OptionReplyType.Ack).ConfigureAwait(false);
    }

    private Task ErrorAsync(uint option, OptionReplyType type, string message)
    {
        NbdLog.OptionRefused(logger, peer, option, type, message);
        return ReplyAsync(option, type, Encoding.UTF8.GetBytes(message));
    }

    private async Task ReplyAsync(uint option, OptionReplyType type, byte[]? payload = null)
    {
        payload ??= [];
        var message = new byte[NbdLimits.OptionReplyHeaderLength + payload.Length];
        ReplyEncoder.OptionReplyHeader(message, option, type, (uint)payload.Length);
        payload.CopyTo(message, NbdLimits.OptionReplyHeaderLength);
        await streams.Output.SendAsync(message).ConfigureAwait(false);
    }
}

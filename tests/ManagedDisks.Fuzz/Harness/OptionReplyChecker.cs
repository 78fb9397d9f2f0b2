using System.Buffers.Binary;
using System.Text;
using ManagedDisks.Nbd;
using ManagedDisks.Nbd.Wire;

namespace ManagedDisks.Fuzz.Harness;

/// <summary>
/// Checks what the server said during a handshake against what the client sent: the greeting;
/// replies well framed, in the order of the options, each option answered by exactly one final
/// reply (ACK or an error) and only the reply kinds its option allows; error messages short
/// valid UTF-8 (client text is cut short, qemu CVE-2020-10761); the export's size as the catalog
/// says; with TLS required, nothing but ERR_TLS_REQD before STARTTLS and never a session.
/// </summary>
internal static class OptionReplyChecker
{
    private const int GreetingLength = 18;
    private const int MaxErrorMessage = 1024;

    /// <summary>Returns where the handshake ends in the client's and the server's bytes.</summary>
    public static (int ClientEnd, int ServerEnd) Check(byte[] client, byte[] server, Session? session, TlsMode mode, IExportCatalog catalog)
    {
        if (server.Length < GreetingLength
            || BinaryPrimitives.ReadUInt64BigEndian(server) != NbdMagic.InitPasswd
            || BinaryPrimitives.ReadUInt64BigEndian(server.AsSpan(8)) != NbdMagic.IHaveOpt
            || BinaryPrimitives.ReadUInt16BigEndian(server.AsSpan(16)) != 3)
            throw new FuzzFinding("bad greeting");

        var (flags, options) = ClientOptions.Read(client);
        if (flags is null || (flags & ~3u) != 0)
        {
            if (server.Length != GreetingLength || session is not null) throw new FuzzFinding("went on after missing or unknown client flags");
            return (0, GreetingLength);
        }
        bool fixedNewstyle = (flags & 1) != 0, noZeroes = (flags & 2) != 0;
        if (mode == TlsMode.Require && session is not null) throw new FuzzFinding("a session without TLS while TLS is required");

        int position = GreetingLength, answered = 0;
        (uint Code, uint Type)? lastFinal = null;
        while (position < server.Length)
        {
            if (answered >= options.Count) throw new FuzzFinding($"a reply at byte {position} to an option never sent");
            var option = options[answered];
            var rest = server.AsSpan(position);
            if (rest.Length >= 8 && BinaryPrimitives.ReadUInt64BigEndian(rest) == NbdMagic.OptionReply)
            {
                if (rest.Length < NbdLimits.OptionReplyHeaderLength) throw new FuzzFinding("truncated option reply header");
                uint code = BinaryPrimitives.ReadUInt32BigEndian(rest[8..]);
                uint type = BinaryPrimitives.ReadUInt32BigEndian(rest[12..]);
                uint length = BinaryPrimitives.ReadUInt32BigEndian(rest[16..]);
                if (rest.Length - NbdLimits.OptionReplyHeaderLength < length) throw new FuzzFinding("option reply longer than what was sent");
                var payload = rest.Slice(NbdLimits.OptionReplyHeaderLength, (int)length);
                if (!fixedNewstyle) throw new FuzzFinding("an option reply to a client that is not fixed newstyle");
                if (code != option.Code) throw new FuzzFinding($"reply for option {code} while option {option.Code} is pending");
                bool final = CheckReply(option, (OptionReplyType)type, payload, catalog);
                if (mode == TlsMode.Require) CheckForcedTls(option.Code, (OptionReplyType)type);
                position += NbdLimits.OptionReplyHeaderLength + (int)length;
                if (final)
                {
                    lastFinal = (code, type);
                    answered++;
                }
            }
            else
            {
                // NBD_OPT_EXPORT_NAME's reply: export size, transmission flags, then zeroes unless NO_ZEROES.
                int expected = noZeroes ? 10 : 134;
                if (option.Code != (uint)NbdOption.ExportName || session is null || rest.Length != expected)
                    throw new FuzzFinding($"{rest.Length} unframed bytes after option {option.Code}");
                if (BinaryPrimitives.ReadUInt64BigEndian(rest) != (ulong)session.Export.Device.Size) throw new FuzzFinding("EXPORT_NAME reply with the wrong size");
                position += expected;
                lastFinal = (option.Code, (uint)OptionReplyType.Ack);
                answered++;
            }
        }

        if (session is not null && lastFinal is not ((uint)NbdOption.Go, (uint)OptionReplyType.Ack) and not ((uint)NbdOption.ExportName, _))
            throw new FuzzFinding("a session without a successful GO or EXPORT_NAME");
        return (answered == 0 ? 4 : options[answered - 1].End, position);
    }

    /// <summary>Returns whether the reply is final for its option.</summary>
    private static bool CheckReply(ClientOption option, OptionReplyType type, ReadOnlySpan<byte> payload, IExportCatalog catalog)
    {
        var code = (NbdOption)option.Code;
        switch (type)
        {
            case OptionReplyType.Ack:
                if (!payload.IsEmpty) throw new FuzzFinding("ACK with data");
                return true;
            case OptionReplyType.Server when code == NbdOption.List:
                if (payload.Length < 4 || BinaryPrimitives.ReadUInt32BigEndian(payload) > payload.Length - 4) throw new FuzzFinding("malformed NBD_REP_SERVER");
                return false;
            case OptionReplyType.Info when code is NbdOption.Info or NbdOption.Go:
                CheckInfo(option, payload, catalog);
                return false;
            case OptionReplyType.MetaContext when code is NbdOption.ListMetaContext or NbdOption.SetMetaContext:
                if (payload.Length < 5 || Encoding.UTF8.GetString(payload[4..]) != NbdLimits.BaseAllocation) throw new FuzzFinding("malformed NBD_REP_META_CONTEXT");
                return false;
            case >= OptionReplyType.ErrUnsup and <= OptionReplyType.ErrTooBig:
                if (payload.Length > MaxErrorMessage) throw new FuzzFinding($"error message of {payload.Length} bytes");
                if (!WireStrings.TryDecode(payload, out _)) throw new FuzzFinding("error message is not UTF-8 without NUL");
                return true;
            default:
                throw new FuzzFinding($"reply type {(uint)type:x} for option {option.Code}");
        }
    }

    private static void CheckInfo(ClientOption option, ReadOnlySpan<byte> payload, IExportCatalog catalog)
    {
        if (payload.Length < 2) throw new FuzzFinding("NBD_REP_INFO without a type");
        var request = ExportInfoRequest.TryDecode(option.Data, out _) ?? throw new FuzzFinding("NBD_REP_INFO for a malformed request");
        var export = catalog.Find(request.ExportName) ?? throw new FuzzFinding("NBD_REP_INFO for an unknown export");
        switch ((InfoType)BinaryPrimitives.ReadUInt16BigEndian(payload))
        {
            case InfoType.Export:
                if (payload.Length != 12 || BinaryPrimitives.ReadUInt64BigEndian(payload[2..]) != (ulong)export.Device.Size) throw new FuzzFinding("NBD_INFO_EXPORT wrong");
                break;
            case InfoType.BlockSize:
                if (payload.Length != 14) throw new FuzzFinding("NBD_INFO_BLOCK_SIZE wrong length");
                break;
            case InfoType.Name or InfoType.Description:
                break;
            default:
                throw new FuzzFinding("an information type nobody asked for");
        }
    }

    private static void CheckForcedTls(uint code, OptionReplyType type)
    {
        var allowed = (NbdOption)code switch
        {
            NbdOption.Abort => OptionReplyType.Ack,
            NbdOption.StartTls => OptionReplyType.ErrPolicy, // the fuzz server has no certificate
            _ => OptionReplyType.ErrTlsReqd,
        };
        if (type != allowed) throw new FuzzFinding($"option {code} answered {type} before TLS while TLS is required");
    }
}

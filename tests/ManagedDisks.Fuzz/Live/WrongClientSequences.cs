using System.Text;

namespace ManagedDisks.Fuzz.Live;

/// <summary>How a client leaves: half-close and wait for the server to hang up, or drop the connection at once.</summary>
public enum Ending { HalfClose, Abort }

/// <summary>One connection's worth of client bytes, what kind of wrongness it carries, and how it ends.</summary>
public sealed record ClientSequence(string Kind, byte[] Bytes, int Frames, Ending Ending, int Pieces);

/// <summary>An export the live daemon serves, as the generator needs to know it.</summary>
public sealed record LiveExport(string Name, long Size, bool ReadOnly);

/// <summary>
/// Plausible but wrong NBD clients from a seeded PRNG: frames with the right magic and the wrong
/// lengths, options out of order or repeated, GO and INFO for exports that do not exist or with
/// bogus information types, STARTTLS when TLS is off, names too long or not UTF-8, requests past
/// the end, unaligned, with unknown flags or commands, before and after DISC, huge lengths,
/// frames cut short and then a hang-up. A few right frames are mixed in so that the wrong ones
/// meet every state of a connection.
/// </summary>
public sealed class WrongClientSequences(Random random, IReadOnlyList<LiveExport> exports)
{
    private const uint MaxPayload = 32 * 1024 * 1024;

    public ClientSequence Next()
    {
        var w = new WireWriter();
        string kind;
        if (random.Next(3) == 0)
        {
            kind = "handshake:" + WrongHandshake(w);
        }
        else
        {
            var export = exports[random.Next(exports.Count)];
            bool structured = Handshake(w, export);
            kind = "transmission:" + WrongRequests(w, export, structured);
        }
        var ending = random.Next(5) == 0 ? Ending.Abort : Ending.HalfClose;
        return new ClientSequence(kind, w.ToArray(), w.Frames, ending, 1 + random.Next(4));
    }

    /// <summary>A right handshake to get to transmission, sometimes with structured replies and a meta context.</summary>
    private bool Handshake(WireWriter w, LiveExport export)
    {
        w.ClientFlags(3);
        bool structured = random.Next(2) == 0;
        if (structured) w.Option(8, []);
        if (structured && random.Next(2) == 0) w.Option(10, WireWriter.MetaContextData(Name(export), "base:allocation"));
        w.Option(7, WireWriter.ExportInfoData(Name(export)));
        return structured;
    }

    private static byte[] Name(LiveExport export) => Encoding.UTF8.GetBytes(export.Name);

    private string WrongHandshake(WireWriter w)
    {
        switch (random.Next(10))
        {
            case 0:
                w.ClientFlags((uint)random.Next(4, int.MaxValue)); // unknown client flags
                return "client-flags";
            case 1:
                w.ClientFlags((uint)random.Next(2) * 2); // not fixed newstyle, then an option it may not send
                w.Option(7, WireWriter.ExportInfoData(Name(exports[0])));
                return "non-fixed-go";
            default:
                w.ClientFlags(3);
                break;
        }
        var steps = new List<string>();
        int count = 1 + random.Next(6);
        for (int i = 0; i < count; i++)
        {
            string step = WrongOption(w, out bool terminal);
            steps.Add(step);
            if (terminal) break;
        }
        return string.Join(",", steps);
    }

    private string WrongOption(WireWriter w, out bool terminal)
    {
        terminal = false;
        var export = exports[random.Next(exports.Count)];
        switch (random.Next(22))
        {
            case 0: w.Option(7, WireWriter.ExportInfoData(RandomName())); return "go-unknown";
            case 1: w.Option(6, WireWriter.ExportInfoData(Name(export), RandomInfos())); return "info-bogus-types";
            case 2:
                var data = WireWriter.ExportInfoData(Name(export), 1, 2);
                data[^5] = (byte)(1 + random.Next(200)); // the count no longer matches the data
                w.Option((uint)(6 + random.Next(2)), data);
                return "info-count-mismatch";
            case 3: w.Option(6, WireWriter.ExportInfoData(new byte[4097 + random.Next(4000)])); return "name-too-long";
            case 4:
                var lying = WireWriter.ExportInfoData(Name(export));
                lying[3] = (byte)(lying.Length + random.Next(1, 200)); // name length beyond the data
                w.Option(7, lying);
                return "name-length-lies";
            case 5: w.Option(6, WireWriter.ExportInfoData([0x64, 0xff, 0xfe, 0x00, 0x31])); return "name-not-utf8";
            case 6: w.Option(3, RandomBytes(1 + random.Next(64))); return "list-with-data";
            case 7: w.Option(8, []); w.Option(8, []); return "structured-twice";
            case 8: w.Option(8, RandomBytes(1 + random.Next(16))); return "structured-with-data";
            case 9: w.Option(10, WireWriter.MetaContextData(Name(export), "base:allocation")); return "set-meta-before-structured";
            case 10: w.Option((uint)(9 + random.Next(2)), WireWriter.MetaContextData(Name(export), "qemu:dirty-bitmap:x", "base:", "", "nope")); return "meta-odd-queries";
            case 11:
                var meta = WireWriter.MetaContextData(Name(export), "base:allocation");
                meta[^20] = 0x7f; // query count far beyond the data
                w.Option(9, meta);
                return "meta-count-lies";
            case 12: w.Option(5, random.Next(2) == 0 ? [] : RandomBytes(8)); return "starttls-when-off";
            case 13: w.Option((uint)random.Next(11, int.MaxValue), RandomBytes(random.Next(32))); return "unknown-option";
            case 14: w.Option(3, []); w.Option(6, WireWriter.ExportInfoData(Name(export), 0, 1, 2, 3)); return "list-info-ok";
            case 15:
                terminal = true;
                w.Option(6, [], claimedLength: (uint)(64 * 1024 + 1 + random.Next(int.MaxValue)));
                return "option-length-huge";
            case 16:
                terminal = true;
                w.Option(7, WireWriter.ExportInfoData(Name(export)), magic: WireWriter.IHaveOpt ^ (1UL << random.Next(64)));
                return "option-bad-magic";
            case 17:
                terminal = true;
                w.Option(2, []);
                w.Option(3, []); // after ABORT nothing more is read
                return "abort-then-more";
            case 18:
                terminal = true;
                w.Option(1, RandomName());
                return "export-name-unknown";
            case 19:
                terminal = true;
                var whole = WireWriter.ExportInfoData(Name(export), 1);
                w.Option(7, whole[..random.Next(whole.Length)], claimedLength: (uint)whole.Length); // cut short, then hang-up
                return "option-truncated";
            case 20:
                terminal = true;
                w.Raw(RandomBytes(1 + random.Next(200)));
                return "random-bytes";
            default:
                w.Option(10, WireWriter.MetaContextData(RandomName(), "base:allocation"));
                return "set-meta-unknown-export";
        }
    }

    private string WrongRequests(WireWriter w, LiveExport export, bool structured)
    {
        var steps = new List<string>();
        int count = 1 + random.Next(12);
        ulong cookie = (ulong)random.NextInt64();
        for (int i = 0; i < count; i++)
        {
            string step = WrongRequest(w, export, structured, cookie++, out bool terminal);
            steps.Add(step);
            if (terminal) break;
        }
        return string.Join(",", steps);
    }

    private string WrongRequest(WireWriter w, LiveExport export, bool structured, ulong cookie, out bool terminal)
    {
        terminal = false;
        ulong size = (ulong)export.Size;
        ulong aligned = (ulong)random.NextInt64(0, export.Size / 512) * 512;
        switch (random.Next(20))
        {
            case 0: w.Request(0, 0, cookie, size - 512 * (ulong)random.Next(0, 4), 4096 * (uint)random.Next(1, 9)); return "read-past-end";
            case 1: w.Request(0, (ushort)random.Next(2), cookie, ulong.MaxValue - (ulong)random.Next(4096), 4096); return "offset-wraps";
            case 2: w.Request(0, 0, cookie, aligned + (ulong)random.Next(1, 512), 512); return "read-unaligned";
            case 3: w.Request(0, (ushort)(random.Next(2) * 4 + 3 * random.Next(2)), cookie, aligned, 0); return "zero-length";
            case 4: w.Request(0, (ushort)random.Next(8, 65536), cookie, aligned, 512); return "unknown-command";
            case 5: w.Request((ushort)(1 << random.Next(5, 16)), 0, cookie, aligned, 512); return "unknown-flag";
            case 6: w.Request(0, 3, cookie, aligned + 512, 512); return "flush-with-range";
            case 7: w.Request(0, 1, cookie, aligned, 512, RandomBytes(512)); return export.ReadOnly ? "write-read-only" : "write-ok";
            case 8: w.Request(0, 7, cookie, aligned, 65536); return structured ? "block-status" : "block-status-unnegotiated";
            case 9: w.Request(4, 0, cookie, aligned, 512); return structured ? "read-df" : "read-df-unnegotiated";
            case 10: w.Request(16, 1, cookie, aligned, 512, RandomBytes(512)); return "fast-zero-on-write";
            case 11: w.Request(0, 0, cookie, 0, MaxPayload + (uint)random.Next(1, 1 << 20)); return "read-too-long";
            case 12: w.Request(8, (ushort)random.Next(7), cookie, aligned, 512, null); return "req-one-elsewhere";
            case 13:
                w.Request(0, 2, cookie, 0, 0);
                w.Request(0, 0, cookie + 1, 0, 512); // after DISC: must not be served
                terminal = true;
                return "after-disc";
            case 14:
                terminal = true;
                w.Request(0, 1, cookie, 0, MaxPayload + (uint)random.Next(1, int.MaxValue));
                return "write-too-long";
            case 15:
                terminal = true;
                w.Request(0, 1, cookie, aligned, 4096, RandomBytes(random.Next(4096))); // payload cut short, then hang-up
                return "write-truncated";
            case 16:
                terminal = true;
                w.Request(0, 0, cookie, aligned, 512, magic: WireWriter.RequestMagic ^ (1u << random.Next(32)));
                return "request-bad-magic";
            case 17:
                terminal = true;
                w.Raw(new WireWriter().Request(0, 0, cookie, aligned, 512).ToArray()[..random.Next(1, 28)]);
                return "header-truncated";
            case 18: w.Request(0, 6, cookie, aligned, 512 * (uint)random.Next(1, 64)); return export.ReadOnly ? "zero-read-only" : "zero-ok";
            default: w.Request(0, 0, cookie, aligned, 512); return "read-ok";
        }
    }

    private ushort[] RandomInfos()
    {
        var infos = new ushort[random.Next(1, 8)];
        for (int i = 0; i < infos.Length; i++) infos[i] = (ushort)random.Next(65536);
        return infos;
    }

    private byte[] RandomName() => Encoding.UTF8.GetBytes("no-such-disk-" + random.Next(1000));

    private byte[] RandomBytes(int count)
    {
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }
}

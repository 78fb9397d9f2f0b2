using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using ManagedDisks.Nbd.Wire;

namespace ManagedDisks.Tests;

public class OptionParserTests
{
    private static byte[] GoData(string name, params ushort[] infos)
    {
        byte[] nameBytes = Encoding.UTF8.GetBytes(name);
        var data = new byte[4 + nameBytes.Length + 2 + 2 * infos.Length];
        BinaryPrimitives.WriteUInt32BigEndian(data, (uint)nameBytes.Length);
        nameBytes.CopyTo(data, 4);
        BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(4 + nameBytes.Length), (ushort)infos.Length);
        for (int i = 0; i < infos.Length; i++) BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(6 + nameBytes.Length + 2 * i), infos[i]);
        return data;
    }

    private static byte[] MetaData(string name, params string[] queries)
    {
        var bytes = new List<byte>();
        void String(string s)
        {
            var b = Encoding.UTF8.GetBytes(s);
            var len = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(len, (uint)b.Length);
            bytes.AddRange(len);
            bytes.AddRange(b);
        }
        String(name);
        var count = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(count, (uint)queries.Length);
        bytes.AddRange(count);
        foreach (var q in queries) String(q);
        return bytes.ToArray();
    }

    [Test]
    public void EveryTruncatedPrefixOfAnOptionNeedsMoreData()
    {
        byte[] frame = WireBuilder.Option(7, GoData("disk0", 3));
        for (int length = 0; length < frame.Length; length++)
        {
            var status = OptionParser.TryParseOption(new ReadOnlySequence<byte>(frame, 0, length), 65536, out _, out _, out _);
            Assert.That(status, Is.EqualTo(ParseStatus.NeedMoreData), $"prefix of {length} bytes");
        }
    }

    [Test]
    public void OptionsBackToBackInOneByteSegments()
    {
        byte[] bytes = WireBuilder.Concat(WireBuilder.Option(8, []), WireBuilder.Option(7, GoData("disk0", 3, 1)), WireBuilder.Option(2, []));
        var input = Segment.OneBytePerSegment(bytes);
        var seen = new List<(uint, byte[])>();
        while (OptionParser.TryParseOption(input, 65536, out uint option, out var data, out var consumed) == ParseStatus.Complete)
        {
            seen.Add((option, data.ToArray()));
            input = input.Slice(consumed);
        }
        Assert.That(seen.Select(s => s.Item1), Is.EqualTo(new uint[] { 8, 7, 2 }));
        Assert.That(seen[1].Item2, Is.EqualTo(GoData("disk0", 3, 1)));
    }

    [Test]
    public void HugeOptionLengthIsRefusedBeforeItsDataArrives()
    {
        byte[] header = WireBuilder.Option(3, [])[..16];
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(12), 1u << 30);
        Assert.That(OptionParser.TryParseOption(new ReadOnlySequence<byte>(header), 65536, out _, out _, out _), Is.EqualTo(ParseStatus.PayloadTooLarge));
    }

    [Test]
    public void BadOptionMagic()
    {
        byte[] frame = WireBuilder.Option(3, []);
        frame[7] ^= 1;
        Assert.That(OptionParser.TryParseOption(new ReadOnlySequence<byte>(frame), 65536, out _, out _, out _), Is.EqualTo(ParseStatus.BadMagic));
    }

    [Test]
    public void ClientFlagsNeedFourBytes()
    {
        byte[] flags = [0, 0, 0, 3];
        for (int n = 0; n < 4; n++)
            Assert.That(OptionParser.TryParseClientFlags(new ReadOnlySequence<byte>(flags, 0, n), out _, out _), Is.EqualTo(ParseStatus.NeedMoreData));
        Assert.That(OptionParser.TryParseClientFlags(Segment.OneBytePerSegment(flags), out uint value, out _), Is.EqualTo(ParseStatus.Complete));
        Assert.That(value, Is.EqualTo(3u));
    }

    [Test]
    public void GoRequestDecodes()
    {
        var request = ExportInfoRequest.TryDecode(GoData("disk0", 3, 1, 2), out string? error);
        Assert.That(error, Is.Null);
        Assert.That(request!.ExportName, Is.EqualTo("disk0"));
        Assert.That(request.Requests, Is.EqualTo(new[] { InfoType.BlockSize, InfoType.Name, InfoType.Description }));
    }

    [TestCase(new byte[] { 0, 0, 0 }, "shorter")]
    [TestCase(new byte[] { 0, 0, 0, 9, 0, 0 }, "exceeds")]
    [TestCase(new byte[] { 0, 0, 0, 0, 0, 2, 0, 1 }, "count")]
    [TestCase(new byte[] { 0, 0, 0, 1, 0, 0, 0 }, "UTF-8")]
    public void MalformedGoRequestsAreExplained(byte[] data, string reason)
    {
        Assert.That(ExportInfoRequest.TryDecode(data, out string? error), Is.Null);
        Assert.That(error, Does.Contain(reason));
    }

    [Test]
    public void GoNameOver4096BytesIsRefused()
    {
        Assert.That(ExportInfoRequest.TryDecode(GoData(new string('a', 4097)), out string? error), Is.Null);
        Assert.That(error, Does.Contain("4096"));
    }

    [Test]
    public void MetaContextRequestDecodesAndValidates()
    {
        var request = MetaContextRequest.TryDecode(MetaData("disk0", "base:allocation", "qemu:dirty-bitmap:x"), out string? error);
        Assert.That(error, Is.Null);
        Assert.That(request!.Queries, Is.EqualTo(new[] { "base:allocation", "qemu:dirty-bitmap:x" }));

        byte[] data = MetaData("disk0", "base:allocation");
        for (int length = 0; length < data.Length; length++)
            Assert.That(MetaContextRequest.TryDecode(data.AsSpan(0, length), out _), Is.Null, $"prefix of {length} bytes");
        Assert.That(MetaContextRequest.TryDecode([.. data, 0], out error), Is.Null);
        Assert.That(error, Does.Contain("trailing"));
    }

    [Test]
    public void QueryCountCannotAllocateBeyondTheData()
    {
        byte[] data = MetaData("d");
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(5), uint.MaxValue);
        Assert.That(MetaContextRequest.TryDecode(data, out string? error), Is.Null);
        Assert.That(error, Does.Contain("count"));
    }

    [Test]
    public void EchoedNamesAreTruncated()
    {
        string quoted = WireStrings.Quote(new string('x', 4096));
        Assert.That(quoted.Length, Is.LessThan(100));
        Assert.That(quoted, Does.Contain("4096 characters"));
    }
}

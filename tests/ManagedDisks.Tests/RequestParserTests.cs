using System.Buffers;
using ManagedDisks.Nbd.Wire;

namespace ManagedDisks.Tests;

public class RequestParserTests
{
    private const uint MaxPayload = 32 * 1024 * 1024;

    private static readonly byte[] ReadFrame = WireBuilder.Request(0, 0, 0x1122334455667788, 4096, 512);
    private static readonly byte[] WriteFrame = WireBuilder.Request(1, 1, 7, 8192, 5, [1, 2, 3, 4, 5]);

    [Test]
    public void ParsesEveryHeaderField()
    {
        var status = RequestParser.TryParse(new ReadOnlySequence<byte>(ReadFrame), MaxPayload, out var request, out _, out var consumed);

        Assert.That(status, Is.EqualTo(ParseStatus.Complete));
        Assert.That(request, Is.EqualTo(new NbdRequest(CommandFlags.None, NbdCommand.Read, 0x1122334455667788, 4096, 512)));
        Assert.That(consumed.GetInteger(), Is.EqualTo(28));
    }

    [Test]
    public void EveryTruncatedPrefixNeedsMoreData([Values] bool write)
    {
        byte[] frame = write ? WriteFrame : ReadFrame;
        for (int length = 0; length < frame.Length; length++)
        {
            var input = new ReadOnlySequence<byte>(frame, 0, length);
            var status = RequestParser.TryParse(input, MaxPayload, out _, out _, out var consumed);
            Assert.That(status, Is.EqualTo(ParseStatus.NeedMoreData), $"prefix of {length} bytes");
            Assert.That(input.Slice(0, consumed).Length, Is.Zero, "nothing may be consumed from an incomplete frame");
        }
    }

    [Test]
    public void OneBytePerSegmentParsesTheSameAsContiguous()
    {
        var input = Segment.OneBytePerSegment(WriteFrame);
        var status = RequestParser.TryParse(input, MaxPayload, out var request, out var payload, out var consumed);

        Assert.That(status, Is.EqualTo(ParseStatus.Complete));
        Assert.That(request.Command, Is.EqualTo(NbdCommand.Write));
        Assert.That(request.Flags, Is.EqualTo(CommandFlags.Fua));
        Assert.That(payload.ToArray(), Is.EqualTo(new byte[] { 1, 2, 3, 4, 5 }));
        Assert.That(input.Slice(consumed).Length, Is.Zero);
    }

    [Test]
    public void FramesBackToBackAreAllFound([Values] bool segmented)
    {
        byte[] bytes = WireBuilder.Concat(ReadFrame, WriteFrame, ReadFrame, WireBuilder.Request(0, 3, 9, 0, 0));
        var input = segmented ? Segment.OneBytePerSegment(bytes) : new ReadOnlySequence<byte>(bytes);

        var commands = new List<NbdCommand>();
        while (RequestParser.TryParse(input, MaxPayload, out var request, out _, out var consumed) == ParseStatus.Complete)
        {
            commands.Add(request.Command);
            input = input.Slice(consumed);
        }

        Assert.That(commands, Is.EqualTo(new[] { NbdCommand.Read, NbdCommand.Write, NbdCommand.Read, NbdCommand.Flush }));
        Assert.That(input.Length, Is.Zero);
    }

    [Test]
    public void BadMagicIsReportedWithoutConsuming()
    {
        byte[] frame = (byte[])ReadFrame.Clone();
        frame[0] ^= 0xff;
        var status = RequestParser.TryParse(new ReadOnlySequence<byte>(frame), MaxPayload, out _, out _, out var consumed);
        Assert.That(status, Is.EqualTo(ParseStatus.BadMagic));
        Assert.That(consumed.GetInteger(), Is.Zero);
    }

    [Test]
    public void OversizedWriteIsRejectedFromTheHeaderAlone()
    {
        // Only the header is present: the parser must not wait for 4 GiB of payload.
        byte[] header = WireBuilder.Request(0, 1, 1, 0, uint.MaxValue);
        var status = RequestParser.TryParse(new ReadOnlySequence<byte>(header), MaxPayload, out var request, out _, out _);
        Assert.That(status, Is.EqualTo(ParseStatus.PayloadTooLarge));
        Assert.That(request.Length, Is.EqualTo(uint.MaxValue));
    }

    [Test]
    public void LargeLengthsOfPayloadFreeCommandsAreNotPayloads()
    {
        byte[] trim = WireBuilder.Request(0, 4, 1, 0, uint.MaxValue);
        var status = RequestParser.TryParse(new ReadOnlySequence<byte>(trim), MaxPayload, out var request, out var payload, out _);
        Assert.That(status, Is.EqualTo(ParseStatus.Complete));
        Assert.That(request.Command, Is.EqualTo(NbdCommand.Trim));
        Assert.That(payload.Length, Is.Zero);
    }
}

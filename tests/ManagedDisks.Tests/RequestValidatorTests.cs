using ManagedDisks.BlockDevices;
using ManagedDisks.Nbd;
using ManagedDisks.Nbd.Wire;

namespace ManagedDisks.Tests;

public class RequestValidatorTests
{
    private const long Size = 1 << 20;
    private static readonly BlockDeviceCapabilities Full = new()
    {
        CanFlush = true, CanFua = true, CanTrim = true, CanZero = true, CanFastZero = true,
        CanExtents = true, CanCache = true, CanMultiConn = true,
    };

    private static NbdError Validate(NbdCommand command, ulong offset, uint length, CommandFlags flags = 0,
        BlockDeviceCapabilities? caps = null, bool structured = true, bool context = true)
    {
        caps ??= Full;
        var request = new NbdRequest(flags, command, 1, offset, length);
        return RequestValidator.Validate(request, ExportFlags.For(caps, structured), caps, Size, context).Error;
    }

    [TestCase(NbdCommand.Read, NbdError.Invalid)]
    [TestCase(NbdCommand.Write, NbdError.NoSpace)]
    [TestCase(NbdCommand.WriteZeroes, NbdError.NoSpace)]
    [TestCase(NbdCommand.Trim, NbdError.Invalid)]
    [TestCase(NbdCommand.Cache, NbdError.Invalid)]
    [TestCase(NbdCommand.BlockStatus, NbdError.Invalid)]
    public void PastTheEndGetsTheSpecsError(object commandValue, object expectedValue)
    {
        var command = (NbdCommand)commandValue;
        var expected = (NbdError)expectedValue;
        Assert.That(Validate(command, Size - 512, 1024), Is.EqualTo(expected));
        Assert.That(Validate(command, Size + 512, 512), Is.EqualTo(expected));
        Assert.That(Validate(command, Size - 512, 512), Is.EqualTo(NbdError.None));
    }

    [Test]
    public void OffsetPlusLengthCannotWrap()
    {
        Assert.That(Validate(NbdCommand.Read, ulong.MaxValue - 511, 1024), Is.EqualTo(NbdError.Invalid));
        Assert.That(Validate(NbdCommand.Write, ulong.MaxValue - 511, 1024), Is.EqualTo(NbdError.NoSpace));
    }

    [TestCase(NbdCommand.Read)]
    [TestCase(NbdCommand.Write)]
    [TestCase(NbdCommand.Trim)]
    [TestCase(NbdCommand.WriteZeroes)]
    public void ZeroLengthIsInvalid(object command) => Assert.That(Validate((NbdCommand)command, 0, 0), Is.EqualTo(NbdError.Invalid));

    [TestCase(NbdCommand.Read, CommandFlags.NoHole)]
    [TestCase(NbdCommand.Write, CommandFlags.ReqOne)]
    [TestCase(NbdCommand.Trim, CommandFlags.FastZero)]
    [TestCase(NbdCommand.Write, CommandFlags.DontFragment)]
    [TestCase(NbdCommand.Read, (CommandFlags)0x8000)]
    public void FlagsOnTheWrongCommandAreInvalid(object command, object flags) =>
        Assert.That(Validate((NbdCommand)command, 0, 512, (CommandFlags)flags), Is.EqualTo(NbdError.Invalid));

    [Test]
    public void FuaIsAcceptedOnEveryCommand()
    {
        foreach (var command in new[] { NbdCommand.Read, NbdCommand.Write, NbdCommand.Trim, NbdCommand.WriteZeroes, NbdCommand.Cache, NbdCommand.BlockStatus })
            Assert.That(Validate(command, 0, 512, CommandFlags.Fua), Is.EqualTo(NbdError.None), command.ToString());
    }

    [Test]
    public void DontFragmentNeedsStructuredReplies()
    {
        Assert.That(Validate(NbdCommand.Read, 0, 512, CommandFlags.DontFragment), Is.EqualTo(NbdError.None));
        Assert.That(Validate(NbdCommand.Read, 0, 512, CommandFlags.DontFragment, structured: false), Is.EqualTo(NbdError.Invalid));
    }

    [Test]
    public void ReadOnlyExportRefusesWritesWithEperm()
    {
        var readOnly = Full with { IsReadOnly = true };
        Assert.That(Validate(NbdCommand.Write, 0, 512, caps: readOnly), Is.EqualTo(NbdError.Perm));
        Assert.That(Validate(NbdCommand.Trim, 0, 512, caps: readOnly), Is.EqualTo(NbdError.Perm));
        Assert.That(Validate(NbdCommand.WriteZeroes, 0, 512, caps: readOnly), Is.EqualTo(NbdError.Perm));
        Assert.That(Validate(NbdCommand.Read, 0, 512, caps: readOnly), Is.EqualTo(NbdError.None));
    }

    [Test]
    public void BlockStatusNeedsASelectedContext() =>
        Assert.That(Validate(NbdCommand.BlockStatus, 0, 512, context: false), Is.EqualTo(NbdError.Invalid));

    [Test]
    public void FlushTakesNoRange()
    {
        Assert.That(Validate(NbdCommand.Flush, 0, 0), Is.EqualTo(NbdError.None));
        Assert.That(Validate(NbdCommand.Flush, 0, 512), Is.EqualTo(NbdError.Invalid));
    }

    [Test]
    public void OversizedReads()
    {
        Assert.That(Validate(NbdCommand.Read, 0, (32u << 20) + 1), Is.EqualTo(NbdError.Invalid));
        Assert.That(Validate(NbdCommand.Read, 0, (32u << 20) + 1, CommandFlags.DontFragment), Is.EqualTo(NbdError.Overflow));
    }

    [Test]
    public void MisalignedRequestsAreInvalidWhenTheDeviceNeedsAlignment()
    {
        var aligned = Full with { MinimumBlockSize = 512 };
        Assert.That(Validate(NbdCommand.Write, 100, 512, caps: aligned), Is.EqualTo(NbdError.Invalid));
        Assert.That(Validate(NbdCommand.Write, 512, 512, caps: aligned), Is.EqualTo(NbdError.None));
    }

    [TestCase((ushort)8)]
    [TestCase((ushort)2)]
    [TestCase((ushort)0xffff)]
    public void UnknownCommandsAreInvalid(ushort command) =>
        Assert.That(Validate((NbdCommand)command, 0, 512), Is.EqualTo(NbdError.Invalid));

    [Test]
    public void AdvertisedFlagsFollowCapabilities()
    {
        var flags = ExportFlags.For(new BlockDeviceCapabilities { IsReadOnly = true, CanTrim = true, CanZero = true, CanFastZero = true }, structuredReplies: false);
        Assert.That(flags, Is.EqualTo(TransmissionFlags.HasFlags | TransmissionFlags.ReadOnly));
    }
}

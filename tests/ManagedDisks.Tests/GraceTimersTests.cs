using ManagedDisks.Keys;
using ManagedDisks.Keys.Lifecycle;

namespace ManagedDisks.Tests;

public class GraceTimersTests
{
    private sealed class ManualClock(DateTimeOffset start) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = start;
        public override DateTimeOffset GetUtcNow() => Now;
    }

    private static readonly DateTimeOffset Start = new(2026, 12, 4, 12, 0, 0, TimeSpan.Zero);
    private static readonly KeyAccess Disabled = new(KeyUsability.Revoked, "key 'kek1' is disabled");
    private static readonly KeyAccess Down = new(KeyUsability.Unreachable, "the HSM does not answer");

    private string _path = "";
    private ManualClock _clock = null!;

    [SetUp]
    public void SetUp()
    {
        _path = Path.Combine(Path.GetTempPath(), $"grace-{Guid.NewGuid():N}", "grace-timers.json");
        _clock = new ManualClock(Start);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(Path.GetDirectoryName(_path)!, recursive: true);

    private GraceTimers New(TimeSpan? unreachable = null) =>
        new(_path, TimeSpan.FromHours(1), unreachable ?? TimeSpan.FromHours(2), _clock);

    [Test]
    public void ARevokedKeyStartsTheClockOnceAndExpiresAtTheDeadline()
    {
        var timers = New();
        var (change, timer) = timers.Observe("disk1", Disabled);
        Assert.That(change, Is.EqualTo(GraceChange.Started));
        Assert.That(timer!.Deadline, Is.EqualTo(Start.AddHours(1)));

        _clock.Now = Start.AddMinutes(30);
        Assert.That(timers.Observe("disk1", Disabled).Change, Is.EqualTo(GraceChange.None), "a second poll does not restart the clock");
        Assert.That(timers.TakeExpired(), Is.Empty);
        Assert.That(timers.NextDeadline, Is.EqualTo(Start.AddHours(1)));

        _clock.Now = Start.AddHours(1);
        var expired = timers.TakeExpired();
        Assert.That(expired.Select(t => (t.Disk, t.Expired)), Is.EqualTo(new[] { ("disk1", true) }));
        Assert.That(timers.TakeExpired(), Is.Empty, "a deadline fires once");
        Assert.That(timers.NextDeadline, Is.Null);
    }

    [Test]
    public void AUsableKeyCancelsTheTimerAndSaysWhetherTheDiskHadBeenShutDown()
    {
        var timers = New();
        timers.Observe("disk1", Disabled);
        var (change, timer) = timers.Observe("disk1", KeyAccess.Usable);
        Assert.That((change, timer!.Expired), Is.EqualTo((GraceChange.Cancelled, false)));
        Assert.That(timers.For("disk1"), Is.Null);

        timers.Observe("disk1", Disabled);
        _clock.Now = Start.AddHours(2);
        timers.TakeExpired();
        (change, timer) = timers.Observe("disk1", KeyAccess.Usable);
        Assert.That((change, timer!.Expired), Is.EqualTo((GraceChange.Cancelled, true)));
        Assert.That(timers.Observe("disk1", KeyAccess.Usable).Change, Is.EqualTo(GraceChange.None));
    }

    [Test]
    public void AnUnreachableStoreGetsItsOwnGraceAndARevocationSeenLaterNeverExtendsIt()
    {
        var timers = New(unreachable: TimeSpan.FromMinutes(30));
        Assert.That(timers.Observe("disk1", Down).Timer!.Deadline, Is.EqualTo(Start.AddMinutes(30)));

        // The store comes back and says the key is gone: the earlier deadline stays.
        _clock.Now = Start.AddMinutes(10);
        var (change, timer) = timers.Observe("disk1", Disabled);
        Assert.That(change, Is.EqualTo(GraceChange.Started));
        Assert.That((timer!.Kind, timer.Deadline), Is.EqualTo((KeyUsability.Revoked, Start.AddMinutes(30))));

        // A revoked key whose store then stops answering stays revoked on the same clock.
        Assert.That(timers.Observe("disk1", Down).Change, Is.EqualTo(GraceChange.None));
        Assert.That(timers.For("disk1")!.Kind, Is.EqualTo(KeyUsability.Revoked));
    }

    [Test]
    public void ARevocationAfterALongUnreachableGraceBringsTheDeadlineForward()
    {
        var timers = New(unreachable: TimeSpan.FromHours(5));
        timers.Observe("disk1", Down);
        _clock.Now = Start.AddMinutes(10);
        Assert.That(timers.Observe("disk1", Disabled).Timer!.Deadline, Is.EqualTo(Start.AddMinutes(70)));
    }

    [Test]
    public void TheClocksSurviveARestart()
    {
        var timers = New();
        timers.Observe("disk1", Disabled);
        timers.Observe("disk2", Down);
        _clock.Now = Start.AddHours(1);
        timers.TakeExpired();

        var again = New();
        Assert.That(again.All.Select(t => (t.Disk, t.Kind, t.Deadline, t.Expired)), Is.EqualTo(new[]
        {
            ("disk1", KeyUsability.Revoked, Start.AddHours(1), true),
            ("disk2", KeyUsability.Unreachable, Start.AddHours(2), false),
        }));
        Assert.That(again.For("disk1")!.Reason, Is.EqualTo(Disabled.Reason));
    }

    [Test]
    public void ACorruptFileIsRefusedWithWhatToDo()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
        File.WriteAllText(_path, "{ not json");
        var error = Assert.Throws<KeyStoreException>(() => New())!;
        Assert.That(error.Message, Does.Contain(_path).And.Contain("delete it to restart every revocation clock"));
    }
}
